"""Settings base every service extends: environment first, then a .env file, then defaults."""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, Callable, List, Optional, Type, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from . import defaults
from .errors import ConfigError

S = TypeVar("S", bound="TarnSettings")

# A variable name `tarn submit --env` and the node-agent accept (POSIX shells' rule).
ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")  # \Z: "$" would let "A\n" through

# Variables that change which code Triton, its backends' interpreters or a shell load: the
# dynamic loader's (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...), glibc's other unsafe ones
# (its unsecvars.h), Python's, shells' and CUDA's injection hook. Triton gets the agent's own
# PATH and LD_LIBRARY_PATH; `--env` and `tarn.env.*` secrets may not set any of these.
UNSAFE_ENV_PREFIXES = ("LD_", "PYTHON", "BASH_FUNC_", "DYLD_")
UNSAFE_ENV_NAMES = frozenset({
    "PATH", "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCPATH", "MALLOC_TRACE",
    "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "BASH_ENV", "ENV", "IFS", "SHELLOPTS", "PERL5LIB",
    "PERL5OPT", "PERLLIB", "RUBYOPT", "NODE_OPTIONS", "CUDA_INJECTION64_PATH", "CUDA_INJECTION32_PATH"})


def unsafe_env_name(name: str) -> bool:
    """True for a variable `--env` or a secret may not set for Triton (any case)."""
    upper = name.upper()
    return upper in UNSAFE_ENV_NAMES or upper.startswith(UNSAFE_ENV_PREFIXES)


def _splitter(separator: Optional[str]) -> Callable[[Any], Any]:
    def split(value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(separator) if item.strip()]
        return value
    return split


# Lists from the environment: a JSON array, or items separated by commas (or lines, or white space).
CommaList = Annotated[List[str], NoDecode, BeforeValidator(_splitter(","))]
LineList = Annotated[List[str], NoDecode, BeforeValidator(_splitter("\n"))]
SpaceList = Annotated[List[str], NoDecode, BeforeValidator(_splitter(None))]  # items that hold commas


class TarnSettings(BaseSettings):
    """Common fields; each service subclasses it once and sets its own env prefix.

    A subclass sets ``model_config = SettingsConfigDict(env_prefix="TARN_AUTHZ_")``,
    so ``TARN_AUTHZ_REDIS_URL`` fills ``redis_url``.
    """

    model_config = SettingsConfigDict(env_prefix="TARN_", extra="ignore", env_file=None)

    redis_url: str = Field(defaults.REDIS_URL, description="Redis holding TARN's streams")
    log_level: str = Field("INFO", description="Python logging level")
    log_json: bool = Field(True, description="Write logs as JSON lines")
    token: Optional[SecretStr] = Field(None, description="API token; unset means no token is required")
    allow_query_token: bool = Field(
        False, description="Accept ?token= (it leaks into access logs); off unless explicitly enabled"
    )

    @classmethod
    def load(cls: Type[S], **overrides: Any) -> S:
        """Build the settings or raise one ConfigError naming every bad field."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, cls.model_config.get("env_prefix", ""))) from None


def describe_validation_error(exc: ValidationError, env_prefix: str = "") -> str:
    """One readable line per problem, naming the environment variable where there is one."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ()))
        if not field:  # a rule across fields (a model validator) names its own variables
            lines.append(str(err.get("msg", "invalid")).removeprefix("Value error, "))
            continue
        env = f" ({env_prefix}{field.upper()})" if env_prefix and "." not in field else ""
        # Never echo the input: it may be a secret.
        lines.append(f"{field}{env}: {err.get('msg', 'invalid')}")
    return "invalid settings: " + "; ".join(lines)
