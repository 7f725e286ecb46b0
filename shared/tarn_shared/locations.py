"""Where a model repository or a credential file is: one parser for `tarn submit` and the
node-agent, so a location that passes submit cannot fail in every container. No I/O."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional
from urllib.parse import urlsplit

from pydantic import AfterValidator

FORBIDDEN_CHARS = ("\0", "\n", "\r")


@dataclass(frozen=True)
class Location:
    """An ``hdfs://`` URI (``authority`` may be empty: the default file system) or a local path."""

    uri: str
    hdfs_path: Optional[str] = None
    authority: str = ""
    local_path: Optional[str] = None


def parse_location(value: str) -> Location:
    """``hdfs://[authority]/path``, ``jceks://hdfs@authority/path`` (Hadoop's provider form)
    or an absolute local path. Raises ValueError naming the problem."""
    if not value or any(c in value for c in FORBIDDEN_CHARS):
        raise ValueError("empty, or holds control characters")
    if value.startswith("/"):
        return Location(uri=value, local_path=checked_absolute(value))
    parts = urlsplit(value)
    if parts.scheme == "hdfs":
        return Location(uri=value, hdfs_path=checked_absolute(parts.path or "/"), authority=parts.netloc)
    if parts.scheme == "jceks" and parts.netloc.startswith("hdfs@"):
        return Location(uri=value, hdfs_path=checked_absolute(parts.path), authority=parts.netloc[len("hdfs@"):])
    raise ValueError("expected an hdfs:// URI or an absolute path")


def parse_credential_location(value: str) -> Location:
    """A JCEKS credential file: on HDFS only, since every container on every node reads it."""
    location = parse_location(value)
    if location.local_path is not None:
        raise ValueError("the credential file must be on HDFS (hdfs://... or jceks://hdfs@...)")
    return location


def checked_absolute(path: str) -> str:
    """An absolute POSIX path with no '.', '..' or empty components (trailing '/' allowed)."""
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} is not absolute")
    components = path.strip("/").split("/") if path.strip("/") else []
    for component in components:
        if component in ("", ".", ".."):
            raise ValueError(f"path {path!r} has a '{component or '//'}' component")
    return "/" + "/".join(components)


def _checked(parse):
    def check(value: str) -> str:
        parse(value)  # raises ValueError with the reason
        return value
    return check


# Settings and option fields that hold a location keep the text and validate it once.
LocationStr = Annotated[str, AfterValidator(_checked(parse_location))]
CredentialLocationStr = Annotated[str, AfterValidator(_checked(parse_credential_location))]
