"""--help rendered from a settings class: every variable, its type and default, never a secret's default."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import pytest
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tarn_shared.cli_help import render_settings_help, settings_help, settings_parser
from tarn_shared.settings import CommaList, TarnSettings


class ExampleSettings(TarnSettings):
    model_config = SettingsConfigDict(env_prefix="TARN_EXAMPLE_", extra="ignore", env_file=None)

    zk_hosts: str = Field(..., description="ZooKeeper ensemble")
    port: int = Field(8095, ge=0, description="API port")
    sockets: CommaList = Field(default_factory=list, description="comma separated")
    mode: Literal["auto", "slots"] = "auto"
    cache_dir: Path = Field(Path("/var/lib/example"), description="where the cache lives, a description long "
                                                                  "enough to be wrapped over more than one line "
                                                                  "of the help text by the renderer")
    password: SecretStr = Field(SecretStr("hunter2-default"), description="a secret with a default")
    digest: Optional[SecretStr] = None
    service: Optional[str] = Field(None, validation_alias=AliasChoices("TARN_EXAMPLE_SERVICE", "SEED_SERVICE",
                                                                       "service"))


def entry(field: str):
    return next(item for item in settings_help(ExampleSettings) if item.field == field)


def test_each_setting_is_listed_with_its_prefixed_variable_type_and_default():
    assert (entry("port").variables, entry("port").type, entry("port").default) == (("TARN_EXAMPLE_PORT",), "int",
                                                                                    "8095")
    assert entry("zk_hosts").default == "required"
    assert (entry("sockets").type, entry("sockets").default) == ("list", "empty")
    assert (entry("mode").type, entry("mode").default) == ("auto|slots", "auto")
    assert (entry("cache_dir").type, entry("cache_dir").default) == ("path", "/var/lib/example")
    assert entry("log_json").default == "true"  # inherited from TarnSettings, as written in the environment


def test_an_alias_lists_every_spelling_and_drops_the_prefix():
    # pydantic-settings reads every choice from the environment, the bare field name too
    assert entry("service").variables == ("TARN_EXAMPLE_SERVICE", "SEED_SERVICE", "SERVICE")


def test_a_secrets_default_is_never_shown():
    assert (entry("password").type, entry("password").default) == ("secret", "hidden")
    assert (entry("digest").type, entry("digest").default) == ("secret", "unset")
    text = render_settings_help(ExampleSettings)
    assert "hunter2" not in text


def test_the_rendered_help_names_every_variable_once_and_ends_with_a_newline():
    text = render_settings_help(ExampleSettings, width=60)
    assert text.endswith("\n") and not text.endswith("\n\n")
    for item in settings_help(ExampleSettings):
        assert text.count(f"  {item.variables[0]}  ") + text.count(f"  {item.variables[0]} | ") == 1, item
    assert "  TARN_EXAMPLE_ZK_HOSTS  (str, required)\n      ZooKeeper ensemble\n" in text
    assert all(len(line) <= 60 for line in text.splitlines() if line.startswith("      "))


def test_the_parser_answers_help_without_any_setting(capsys, monkeypatch):
    monkeypatch.delenv("TARN_EXAMPLE_ZK_HOSTS", raising=False)
    parser = settings_parser("tarn-example", "An example service.", ExampleSettings, notes="A note.")
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tarn-example") and "TARN_EXAMPLE_ZK_HOSTS" in out and "A note." in out
