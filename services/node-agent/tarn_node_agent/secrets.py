"""Secrets from a Hadoop credential file (JCEKS, as ``hadoop credential create`` writes it)
mapped to Triton's environment. Values go nowhere else: not a log, an event or an error.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping

import jks

from .errors import SecretsError

log = logging.getLogger(__name__)
# Hadoop's default keystore password (JavaKeyStoreProvider), unless the environment sets one.
DEFAULT_STORE_PASSWORD = "none"
PASSWORD_ENV = "HADOOP_CREDSTORE_PASSWORD"
ENV_PREFIX = "tarn.env."
FIXED_ALIASES = {"huggingface.token": "HUGGING_FACE_HUB_TOKEN"}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SecretEnvironment:
    values: Dict[str, str] = field(repr=False)  # never printed
    ignored_aliases: List[str] = field(default_factory=list)

    @property
    def names(self) -> List[str]:
        return sorted(self.values)


def store_password(environ: Mapping[str, str]) -> str:
    value = environ.get(PASSWORD_ENV)
    return value if value else DEFAULT_STORE_PASSWORD


def decode_keystore(data: bytes, password: str, where: str) -> Dict[str, str]:
    """alias -> value of every secret key entry; SecretsError on a wrong password or a corrupt file."""
    try:
        store = jks.KeyStore.loads(data, password, try_decrypt_keys=True)
    except jks.KeystoreSignatureException:
        raise SecretsError(f"cannot open credential file {where}: wrong store password "
                           f"(set {PASSWORD_ENV}) or a damaged file") from None
    except (jks.KeystoreException, ValueError, IndexError, KeyError, TypeError) as exc:
        raise SecretsError(f"credential file {where} is not a readable JCEKS keystore "
                           f"({type(exc).__name__})") from None
    except Exception as exc:  # pyjks raises plain errors (struct.error, ...) on truncated input
        raise SecretsError(f"credential file {where} is not a readable JCEKS keystore "
                           f"({type(exc).__name__})") from None
    if store.store_type != "jceks":
        raise SecretsError(f"credential file {where} is a {store.store_type} keystore, not JCEKS")
    values = {}
    for alias, entry in store.secret_keys.items():
        try:
            if not entry.is_decrypted():
                entry.decrypt(password)
            values[alias] = bytes(entry.key).decode("utf-8")
        except Exception as exc:  # noqa: BLE001 - the message must not carry key material
            raise SecretsError(f"cannot decrypt alias {alias!r} of {where} ({type(exc).__name__})") from None
    return values


def map_to_environment(secrets: Mapping[str, str]) -> SecretEnvironment:
    """``huggingface.token`` -> HUGGING_FACE_HUB_TOKEN, ``tarn.env.x`` -> X; other aliases ignored
    with a warning naming the alias."""
    values: Dict[str, str] = {}
    ignored: List[str] = []
    for alias in sorted(secrets):
        name = FIXED_ALIASES.get(alias)
        if name is None and alias.lower().startswith(ENV_PREFIX):
            # JCEKS keeps aliases in lower case, so the variable name is upper-cased back.
            name = alias[len(ENV_PREFIX):].upper()
            if not ENV_NAME.match(name):
                name = None
        if name is None:
            ignored.append(alias)
            log.warning("credential alias ignored: not huggingface.token nor tarn.env.<NAME>",
                        extra={"alias": alias})
            continue
        values[name] = secrets[alias]
    return SecretEnvironment(values, ignored)
