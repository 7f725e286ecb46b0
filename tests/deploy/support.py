"""What the deployment files are checked against: the services' settings classes (the
environment variables each accepts) and their console entry points (pyproject.toml)."""
from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, FrozenSet, List, Tuple, Type

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Service:
    name: str
    package_dir: str  # relative to ROOT
    settings: str  # "module:Class"

    @property
    def pyproject(self) -> Path:
        return ROOT / self.package_dir / "pyproject.toml"

    def settings_class(self) -> Type[BaseSettings]:
        module, _, cls = self.settings.partition(":")
        return getattr(importlib.import_module(module), cls)


SERVICES: Dict[str, Service] = {s.name: s for s in (
    Service("am", "services/am", "tarn_am.settings:AmSettings"),
    Service("node-agent", "services/node-agent", "tarn_node_agent.settings:NodeAgentSettings"),
    Service("gateway-sync", "services/gateway-sync", "tarn_gateway_sync.settings:GatewaySyncSettings"),
    Service("authz", "services/authz", "tarn_authz.settings:AuthzSettings"),
)}


def env_names(settings: Type[BaseSettings]) -> FrozenSet[str]:
    """Every environment variable that fills a field, upper-cased (pydantic-settings
    matches case-insensitively unless the class says otherwise). A field with an explicit
    alias is read only under its alias(es): the prefix no longer applies to it."""
    config = settings.model_config
    assert not config.get("case_sensitive"), "env_names assumes case-insensitive settings"
    prefix = config.get("env_prefix", "")
    names = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if alias is None:
            names.add((prefix + field_name).upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(choice.upper() for choice in alias.choices if isinstance(choice, str))
    return frozenset(names)


@lru_cache(maxsize=None)
def console_scripts(service: str) -> Dict[str, str]:
    """name -> "module:function" from the service's pyproject.toml."""
    data = tomllib.loads(SERVICES[service].pyproject.read_text())
    return dict(data["project"].get("scripts", {}))


def resolve_entry_point(target: str):
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------- Dockerfiles

@dataclass(frozen=True)
class Dockerfile:
    path: Path
    instructions: Tuple[Tuple[str, str], ...]  # (INSTRUCTION, arguments), continuation lines joined

    @classmethod
    def parse(cls, path: Path) -> "Dockerfile":
        logical, current = [], ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not current and (not line or line.startswith("#")):
                continue
            if line.startswith("#"):
                continue  # a comment inside a continued instruction
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            logical.append(current)
            current = ""
        instructions = []
        for line in logical:
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        return cls(path, tuple(instructions))

    def all(self, keyword: str) -> List[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> Dict[str, str]:
        """ENV in the KEY=VALUE form (the legacy `ENV KEY VALUE` form is not used here)."""
        found: Dict[str, str] = {}
        for args in self.all("ENV"):
            for word in shlex.split(args):
                key, sep, value = word.partition("=")
                assert sep, f"{self.path.name}: use ENV KEY=VALUE, got {args!r}"
                found[key] = value
        return found

    def exec_form(self, keyword: str) -> List[str]:
        import json

        values = self.all(keyword)
        assert len(values) <= 1, f"{self.path.name}: more than one {keyword}"
        if not values:
            return []
        parsed = json.loads(values[0])
        assert isinstance(parsed, list), f"{self.path.name}: {keyword} must use the exec (JSON) form"
        return parsed


# ---------------------------------------------------------------- systemd units

def unit_directives(path: Path) -> List[Tuple[str, str, str]]:
    """(section, key, value) in file order; keys may repeat, as systemd allows."""
    section, found = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


TARN_VARIABLE = re.compile(r"\b((?:TARN|RANGER)_[A-Z0-9_]+)=")
