"""Secrets from a Hadoop credential file (JCEKS, as ``hadoop credential create`` writes it)
mapped to Triton's environment, and the deployment's gateway key (``tarn.gateway.key``), which
is not: Triton gets it only as its restricted-API key (launch.restriction_args). Values go
nowhere else: not a log, an event or an error.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

from tarn_shared.settings import unsafe_env_name

from .errors import SecretsError

log = logging.getLogger(__name__)
ENV_PREFIX = "tarn.env."
FIXED_ALIASES = {"huggingface.token": "HUGGING_FACE_HUB_TOKEN"}
GATEWAY_KEY_ALIAS = "tarn.gateway.key"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Travels in an HTTP header and in tritonserver's `<apis>:<header>=<key>` flag, and is written
# into HAProxy's map and Knox's alias: no ':', '=', ',', '%', quotes or spaces.
GATEWAY_KEY = re.compile(r"^[A-Za-z0-9._~+/-]{16,512}$")


@dataclass(frozen=True)
class SecretEnvironment:
    values: Dict[str, str] = field(repr=False)  # never printed
    ignored_aliases: List[str] = field(default_factory=list)
    gateway_key: Optional[str] = field(default=None, repr=False)

    @property
    def names(self) -> List[str]:
        return sorted(self.values)


def map_to_environment(secrets: Mapping[str, str]) -> SecretEnvironment:
    """``huggingface.token`` -> HUGGING_FACE_HUB_TOKEN, ``tarn.env.x`` -> X; other aliases ignored
    with a warning naming the alias. SecretsError naming the alias when X is an unsafe variable
    (LD_PRELOAD, PATH, PYTHONPATH, ...)."""
    values: Dict[str, str] = {}
    ignored: List[str] = []
    gateway_key = secrets.get(GATEWAY_KEY_ALIAS)
    if gateway_key is not None and not GATEWAY_KEY.match(gateway_key):
        raise SecretsError(f"credential alias {GATEWAY_KEY_ALIAS!r} must be 16 to 512 characters of "
                           "A-Z a-z 0-9 . _ ~ + / - (e.g. `openssl rand -hex 32`)")
    for alias in sorted(secrets):
        if alias == GATEWAY_KEY_ALIAS:
            continue
        name = FIXED_ALIASES.get(alias)
        if name is None and alias.lower().startswith(ENV_PREFIX):
            # JCEKS keeps aliases in lower case, so the variable name is upper-cased back.
            name = alias[len(ENV_PREFIX):].upper()
            if not ENV_NAME.match(name):
                name = None
        if name is not None and unsafe_env_name(name):
            # Whoever can write the credential file must not choose the code Triton loads.
            raise SecretsError(f"credential alias {alias!r} maps to {name}, which may not be set for "
                               "Triton (it changes which code it loads): remove or rename the alias")
        if name is None:
            ignored.append(alias)
            log.warning("credential alias ignored: not huggingface.token nor tarn.env.<NAME>",
                        extra={"alias": alias})
            continue
        values[name] = secrets[alias]
    return SecretEnvironment(values, ignored, gateway_key)
