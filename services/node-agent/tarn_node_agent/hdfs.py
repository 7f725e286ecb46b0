"""The one adapter to HDFS: WebHDFS through HdfsCLI (the ``hdfs`` package).

Authentication, in the order ``auto`` tries it: a delegation token from
$HADOOP_TOKEN_FILE_LOCATION (what YARN hands a container; sent as ``delegation=``),
Kerberos/SPNEGO when a ticket cache or keytab is configured (hdfs.ext.kerberos), else
simple auth (``user.name=``). Library errors become the node-agent's errors in ``_call``.
"""
from __future__ import annotations

import getpass
import logging
import os
import posixpath
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar

import requests
from hdfs import InsecureClient, TokenClient
from hdfs.client import Client, _Request
from hdfs.util import HdfsError

from tarn_shared.errors import ConfigError
from tarn_shared.errors import UnavailableError
from tarn_shared.repository_layout import RemoteEntry, entry_from_status, relative_to

from .checksums import RemoteChecksum
from .errors import RepositoryNotFound, RepositoryPermissionDenied, StagingError, TokenFileError
from .hdfs_credentials import TOKEN_ENV, CredentialsAtHand, choose
from .tokens import HadoopToken, parse_token_storage

log = logging.getLogger(__name__)
T = TypeVar("T")
READ_CHUNK_BYTES = 4 << 20
TIMEOUT_S = (10.0, 120.0)  # connect, read


class Hdfs:
    """WebHDFS operations the node-agent needs, with errors translated once."""

    def __init__(self, client: Client, description: str) -> None:
        self._client = client
        self.description = description

    @classmethod
    def connect(cls, url: str, *, auth: str = "auto", user: Optional[str] = None, authority: str = "",
                environ: Mapping[str, str] = os.environ, pool_size: int = 8, kerberized: bool = False,
                purpose: str = "the model repository") -> "Hdfs":
        """``kerberized``: core-site.xml says so, and a missing token is then an error of its own."""
        session = requests.Session()
        # Room for every staging thread to keep its connection alive.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(8, pool_size * 2))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.trust_env = False
        location = environ.get(TOKEN_ENV) if auth in ("auto", "token") else None
        choice, token = choose(auth, CredentialsAtHand(
            authority, purpose, location, _read_tokens(location) if location else [],
            has_ticket=bool(environ.get("KRB5CCNAME") or environ.get("KRB5_CLIENT_KTNAME")), kerberized=kerberized))
        if token is not None:
            log.info("using an HDFS delegation token", extra={"token_kind": token.kind, "service": token.service})
            client: Client = TokenClient(url, token.url_string(), session=session, timeout=TIMEOUT_S)
        elif choice == "kerberos":
            try:
                from hdfs.ext.kerberos import KerberosClient
            except ImportError as exc:
                raise ConfigError(f"Kerberos auth needs the 'kerberos' extra (requests-kerberos): {exc}") from None
            client = KerberosClient(url, mutual_auth="OPTIONAL", max_concurrency=pool_size, session=session,
                                    timeout=TIMEOUT_S)
        else:
            name = user or environ.get("HADOOP_USER_NAME") or getpass.getuser()
            client = InsecureClient(url, user=name, session=session, timeout=TIMEOUT_S)
        return cls(client, f"{url} ({choice} auth)")

    # -- the choke point
    def _call(self, what: str, path: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except HdfsError as exc:
            raise _translate(exc, what, path) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise UnavailableError(f"WebHDFS at {self.description} unreachable while {what} {path}: "
                                   f"{type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise StagingError(f"WebHDFS error while {what} {path}: {type(exc).__name__}: {exc}") from None

    # -- operations
    def status(self, path: str) -> Dict:
        return self._call("reading the status of", path, lambda: self._client.status(path))

    def list_tree(self, root: str) -> List[RemoteEntry]:
        """Every file and directory below ``root`` (a directory), paths relative to it."""
        status = self.status(root)
        if status.get("type") != "DIRECTORY":
            raise StagingError(f"hdfs path {root} is a file, not a model repository directory")
        entries: List[RemoteEntry] = []
        pending = [root]
        while pending:
            directory = pending.pop()
            listing: List[Tuple[str, Dict]] = self._call(
                "listing", directory, lambda d=directory: self._client.list(d, status=True))
            for name, item in listing:
                full = posixpath.join(directory, name)
                entry = entry_from_status(relative_to(root, full), item)
                entries.append(entry)
                if entry.is_dir:
                    pending.append(full)
        return entries

    def checksum(self, path: str) -> RemoteChecksum:
        payload = self._call("reading the checksum of", path, lambda: self._client.checksum(path))
        return RemoteChecksum.from_webhdfs(payload)

    def block_lengths(self, path: str, length: int) -> List[int]:
        """The lengths of the file's blocks in order (a concatenated or appended file's are
        not all blockSize long), from GETFILEBLOCKLOCATIONS (WebHDFS has it since Hadoop 3.4)."""
        payload = self._call("reading the block locations of", path, lambda: _block_locations(
            self._client, path, offset=0, length=max(length, 1)).json())
        blocks = sorted(payload["BlockLocations"]["BlockLocation"] or [], key=lambda b: int(b["offset"]))
        return [int(b["length"]) for b in blocks]

    @contextmanager
    def open(self, path: str, chunk_bytes: int = READ_CHUNK_BYTES, offset: int = 0,
             length: Optional[int] = None) -> Iterator[Iterator[bytes]]:
        """The file's bytes (from ``offset``, ``length`` of them or to the end) in chunks; errors
        while streaming are translated too."""
        context = self._call("opening", path, lambda: self._client.read(
            path, chunk_size=chunk_bytes, offset=offset, length=length))
        reader = self._call("opening", path, context.__enter__)
        try:
            yield self._guarded(path, reader)
        finally:
            context.__exit__(None, None, None)

    def _guarded(self, path: str, reader: Iterator[bytes]) -> Iterator[bytes]:
        iterator = iter(reader)
        while True:
            chunk = self._call("reading", path, lambda: next(iterator, None))
            if chunk is None:
                return
            yield chunk

    def read_bytes(self, path: str, limit_bytes: int = 16 << 20) -> bytes:
        status = self.status(path)
        if status.get("type") != "FILE":
            raise StagingError(f"hdfs path {path} is not a file")
        if int(status.get("length", 0)) > limit_bytes:
            raise StagingError(f"hdfs file {path} is larger than {limit_bytes} bytes")
        with self.open(path) as chunks:
            return b"".join(chunks)


# HdfsCLI has no method for this operation; its request factory adds the same auth and retries.
_block_locations = _Request("GET").to_method("GETFILEBLOCKLOCATIONS")


def _translate(exc: HdfsError, what: str, path: str) -> Exception:
    kind = getattr(exc, "exception", None) or ""
    text = str(exc)
    if kind == "FileNotFoundException" or "does not exist" in text:
        return RepositoryNotFound(f"hdfs path {path} does not exist")
    if kind in ("AccessControlException", "SecurityException") or "Permission denied" in text:
        return RepositoryPermissionDenied(f"permission denied while {what} hdfs path {path}: {text}")
    if "Authentication failure" in text or "Authentication required" in text:  # WebHDFS's 401
        return StagingError(f"WebHDFS refused to authenticate the node-agent while {what} {path}: no valid "
                            "delegation token (HADOOP_TOKEN_FILE_LOCATION) or Kerberos ticket (KRB5CCNAME, "
                            "KRB5_CLIENT_KTNAME)")
    if kind in ("RetriableException", "StandbyException", "SafeModeException"):
        return UnavailableError(f"HDFS not available while {what} {path}: {text}")
    return StagingError(f"HDFS error while {what} {path}: {kind or 'error'}: {text}")


def _read_tokens(location: str) -> List[HadoopToken]:
    try:
        data = Path(location).read_bytes()
    except OSError as exc:
        raise TokenFileError(f"cannot read {TOKEN_ENV} {location}: {exc.strerror}") from None
    return parse_token_storage(data)
