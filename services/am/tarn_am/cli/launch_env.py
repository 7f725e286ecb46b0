"""TARN's settings as YARN's container launch script must carry them.

The NodeManager writes each variable as ``export K="V"`` without escaping, so a ``"``, ``$``,
backtick or backslash in a token, password or URL would be stripped, expanded or run by the
container's shell. TARN's own variables are meant literally: they are escaped for those
double quotes. The user's ``--env`` is left as YARN users expect (``$PWD`` expands), and so is
its copy for Triton (TARN_NODE_AGENT_ENV)."""
from __future__ import annotations

import re
from typing import Dict, Mapping

from .am_client import CliError

_SHELL_SPECIAL = re.compile(r'([\\"$`])')
# The NodeManager rewrites these before the shell sees them ({{X}} becomes $X).
_YARN_EXPANDED = ("{{", "}}", "<CPS>", "<LOG_DIR>")
_USERS_OWN = {"TARN_NODE_AGENT_ENV"}


def launch_env(env: Mapping[str, str]) -> Dict[str, str]:
    out = {}
    for key, value in env.items():
        if not key.startswith("TARN_") or key in _USERS_OWN:
            out[key] = value
            continue
        for token in _YARN_EXPANDED:
            if token in value:
                raise CliError(f"{key}'s value holds {token!r}, which YARN's NodeManager rewrites before the "
                               "container starts: choose a value without it")
        out[key] = _SHELL_SPECIAL.sub(r"\\\1", value)
    return out
