#!/usr/bin/env python3
"""Write docs/configuration.md from the services' settings classes (never by hand).

    .venv/bin/python docs/gen_config_reference.py          # rewrite docs/configuration.md
    .venv/bin/python docs/gen_config_reference.py --check  # exit 1 when it is out of date

tests/deploy/test_docs.py fails when the committed file differs from what this writes.
"""
from __future__ import annotations

import argparse
import importlib
import socket
import sys
import typing
from pathlib import Path
from typing import List, Optional, Type

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

OUT = Path(__file__).resolve().parent / "configuration.md"

# (title, settings class, how it is given its settings, notes)
SERVICES = [
    ("tarn-am", "tarn_am.settings:AmSettings",
     "`tarn submit` writes these into the application master's environment from its flags "
     "(`tarn_am/cli/spec.py`, `am_environment`); set them by hand only to run tarn-am outside YARN in tests.",
     []),
    ("tarn-node-agent", "tarn_node_agent.settings:NodeAgentSettings",
     "`tarn submit` sets them in every Triton container (`agent_environment`); extra ones with "
     "`tarn submit --agent-env KEY=VALUE`. Each is also a command-line flag, `--field-name VALUE` "
     "(list settings repeat the flag); a flag beats the environment.",
     ["Lists from the environment: `TARN_NODE_AGENT_TRITON_ARGS` is shell-style words (or a JSON array), "
      "`TARN_NODE_AGENT_ENV` one `KEY=VALUE` per line, `TARN_NODE_AGENT_LOAD_MODELS` comma separated.",
      "`container_id` defaults to `$CONTAINER_ID` (YARN sets it) and `app_id` is derived from it."]),
    ("tarn-gateway-sync", "tarn_gateway_sync.settings:GatewaySyncSettings",
     "Environment only (systemd: `/etc/tarn/gateway-sync.env`; Compose: `docker-compose.yml`).",
     ["`TARN_GATEWAY_SYNC_HAPROXY_SOCKETS`, `_ZK_ACL` and `_DEPLOYMENTS` are comma separated.",
      "Which ZooKeeper path and HAProxy backend each deployment uses comes from its deployment record "
      "(`tarn submit --zk-ensemble --zk-path --haproxy-backend`), not from these settings."]),
    ("tarn-authz", "tarn_authz.settings:AuthzSettings",
     "Environment (systemd: `/etc/tarn/authz.env`), and the flags `--ranger-service/-rs`, "
     "`--ranger-app-id/-ra`, `--ranger-audit/-raudit`, `--ranger-url`, `--policy-dir`, `--host`, `--port`; "
     "a flag beats the environment, a `TARN_AUTHZ_` variable beats the seeds' one.",
     ["With Kerberos, the systemd unit's `ExecStartPre` runs `kinit -kt $TARN_AUTHZ_KEYTAB "
      "$TARN_AUTHZ_RANGER_KERBEROS_PRINCIPAL` when `TARN_AUTHZ_KEYTAB` is set in the environment file; "
      "`TARN_AUTHZ_KEYTAB` is read by the unit, not by tarn-authz."]),
]


def settings_class(path: str) -> Type[BaseSettings]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def variables(cls: Type[BaseSettings], name: str, field: FieldInfo) -> List[str]:
    alias = field.validation_alias or field.alias
    if alias is None:
        return [(cls.model_config.get("env_prefix", "") + name).upper()]
    if isinstance(alias, str):
        return [alias.upper()]
    assert isinstance(alias, AliasChoices)
    return list(dict.fromkeys(c.upper() for c in alias.choices if isinstance(c, str)))


def type_name(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return " \\| ".join(type_name(a) for a in rest) + (", optional" if len(rest) < len(args) else "")
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, List):
        return f"list of {type_name(args[0])}" if args else "list"
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        if field.default_factory is socket.gethostname:
            return "the host name"
        value = field.default_factory()
        return "empty" if value in ([], {}, "") else f"`{value}`"
    if field.default is PydanticUndefined:
        return "**required**"
    if field.default is None:
        return "unset"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    if field.default == "":
        return "empty"
    return f"`{field.default}`"


def limits(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return f" ({', '.join(parts)})" if parts else ""


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- GENERATED by docs/gen_config_reference.py from the settings classes: do not edit by hand. -->",
        "",
        "Every TARN service reads one settings class (pydantic-settings): environment variables",
        "(names are case-insensitive), then defaults. A missing required value or a bad one stops",
        "the service at start with one line naming each problem and its variable (exit code 2;",
        "tarn-am: 78, which its supervisor does not restart). Secrets (`secret`) are never logged.",
        "Durations carry their unit in the name (`_s` seconds, `_us` microseconds).",
        "",
        "Common to every service (each with its own prefix): `REDIS_URL`, `LOG_LEVEL`, `LOG_JSON`,",
        "`TOKEN` (the API token; unset = no token required) and `ALLOW_QUERY_TOKEN` (accept `?token=`,",
        "which leaks into access logs).",
        "",
    ]
    for title, path, given, notes in SERVICES:
        cls = settings_class(path)
        prefix = cls.model_config.get("env_prefix", "")
        lines += [f"## {title}", "", f"`{path.replace(':', '.')}` — prefix `{prefix}`. {given}", ""]
        lines += [f"- {note}" for note in notes]
        if notes:
            lines.append("")
        lines += ["| variable | type | default | description |", "|---|---|---|---|"]
        for name, field in cls.model_fields.items():
            names = "<br>".join(f"`{v}`" for v in variables(cls, name, field))
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {names} | {type_name(field.annotation)}{limits(field)} | {default_text(field)} | "
                         f"{description} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run docs/gen_config_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
