"""`--help` for a service: every setting of its settings class with its environment
variable(s), type, default and description, rendered from the class alone, so an operator
can discover the options without a working configuration. Secrets' defaults are never shown."""
from __future__ import annotations

import argparse
import textwrap
import typing
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, List, Optional, Sequence, Tuple, Type

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

HELP_FLAGS = ("-h", "--help")


@dataclass(frozen=True)
class SettingHelp:
    field: str
    variables: Tuple[str, ...]  # the first is the canonical one
    type: str
    default: str  # "required", "unset", "empty", "hidden" (a secret's), or the value as written in the environment
    description: str


def setting_variables(cls: Type[BaseSettings], name: str, field: FieldInfo) -> Tuple[str, ...]:
    """The environment variables that fill ``name``: an explicit alias turns the prefix off."""
    alias = field.validation_alias or field.alias
    if alias is None:
        return ((cls.model_config.get("env_prefix", "") + name).upper(),)
    if isinstance(alias, str):
        return (alias.upper(),)
    if isinstance(alias, AliasChoices):
        return tuple(dict.fromkeys(c.upper() for c in alias.choices if isinstance(c, str)))
    return (name.upper(),)


def _members(annotation: Any) -> Tuple[Any, ...]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _members(args[0])
    if origin is typing.Union:
        return tuple(m for a in args if a is not type(None) for m in _members(a))
    return (annotation,)


def is_secret(annotation: Any) -> bool:
    return any(m is SecretStr for m in _members(annotation))


def type_text(annotation: Any) -> str:
    parts = []
    for member in _members(annotation):
        origin, args = typing.get_origin(member), typing.get_args(member)
        if member is SecretStr:
            parts.append("secret")
        elif origin is typing.Literal:
            parts.append("|".join(str(a) for a in args))
        elif origin in (list, List):
            parts.append("list")
        elif isinstance(member, type) and issubclass(member, PurePath):
            parts.append("path")
        else:
            parts.append(getattr(member, "__name__", str(member)))
    return " or ".join(dict.fromkeys(parts))


def _written(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "empty"
    text = str(value)
    return text if text else "empty"


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        try:
            value = field.get_default(call_default_factory=True)
        except TypeError:  # a factory that needs the other fields' values
            return "computed"
    else:
        value = field.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if is_secret(field.annotation) or isinstance(value, SecretStr):
        return "hidden"  # a default token is still a token
    return _written(value)


def settings_help(cls: Type[BaseSettings]) -> List[SettingHelp]:
    return [SettingHelp(name, setting_variables(cls, name, field), type_text(field.annotation),
                        default_text(field), " ".join((field.description or "").split()))
            for name, field in cls.model_fields.items()]


def render_settings_help(cls: Type[BaseSettings], width: int = 100,
                         title: str = "settings (environment variables, then defaults)") -> str:
    """One entry per setting: ``VARIABLE  (type, default X)`` and the description below it."""
    lines = [f"{title}:"]
    for item in settings_help(cls):
        default = "required" if item.default == "required" else f"default {item.default}"
        lines.append(f"  {' | '.join(item.variables)}  ({item.type}, {default})")
        if item.description:
            lines.extend(textwrap.wrap(item.description, width=width, initial_indent=" " * 6,
                                       subsequent_indent=" " * 6))
    return "\n".join(lines) + "\n"


def settings_parser(prog: str, description: str, cls: Type[BaseSettings],
                    notes: Optional[str] = None) -> argparse.ArgumentParser:
    """An argument parser whose --help lists the settings; it reads no setting itself."""
    epilog = render_settings_help(cls) + (f"\n{notes.strip()}\n" if notes else "")
    return argparse.ArgumentParser(prog=prog, description=textwrap.fill(description, 100), epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def wants_help(argv: Sequence[str]) -> bool:
    return any(arg in HELP_FLAGS for arg in argv)
