"""The read-only WebHDFS `tarn submit` checks with before anything reaches YARN: a path's
status, a directory's listing, a small file's bytes.

WebHDFS (not `hdfs dfs`): the node-agents read the repository and the credential file
through WebHDFS at the NameNode(s) $HADOOP_CONF_DIR names (tarn_shared.hadoop_conf), so
the check goes the same way and parses the same FileStatus JSON; and it answers in
milliseconds where each `hdfs dfs` call starts a JVM. Simple auth sends ``user.name``;
a Kerberized cluster gets SPNEGO (httpx-gssapi). Errors are translated once, in ``_call``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import httpx

from tarn_shared.errors import TarnError

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# The NameNode answering is not the active one: ask the next of the nameservice.
FAILOVER_EXCEPTIONS = {"StandbyException", "ObserverRetryOnActiveException"}


class HdfsNotFound(TarnError):
    """The path does not exist: evidence, not a failure to look."""


class WebHdfsError(TarnError):
    """WebHDFS could not answer (unreachable, refused, failed); says what and where."""


def spnego_auth(credentials=None) -> Optional[httpx.Auth]:
    """SPNEGO from the user's Kerberos ticket (or these GSSAPI ``credentials``), or None
    without httpx-gssapi installed."""
    try:
        from httpx_gssapi import OPTIONAL, HTTPSPNEGOAuth
    except ImportError:
        return None
    return HTTPSPNEGOAuth(mutual_authentication=OPTIONAL, creds=credentials)


class WebHdfsReader:
    """GETFILESTATUS, LISTSTATUS and OPEN against the first NameNode of ``urls`` that answers."""

    def __init__(self, http: httpx.Client, urls: Sequence[str], user: Optional[str]) -> None:
        self._http = http
        self._urls = [u.rstrip("/") for u in urls]
        self._user = user

    @classmethod
    def open(cls, urls: str, user: Optional[str], auth: Optional[httpx.Auth] = None) -> "WebHdfsReader":
        """``urls``: one WebHDFS base URL, or several ';'-separated (an HA nameservice)."""
        http = httpx.Client(timeout=TIMEOUT, auth=auth, follow_redirects=True, trust_env=False)
        return cls(http, [u for u in urls.split(";") if u], None if auth else user)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "WebHdfsReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def status(self, path: str) -> Dict:
        return _field(self._call("GETFILESTATUS", path), "FileStatus")

    def list_dir(self, path: str) -> List[Dict]:
        """Each child's FileStatus (its name in ``pathSuffix``)."""
        return _field(self._call("LISTSTATUS", path), "FileStatuses", "FileStatus")

    def read(self, path: str, limit_bytes: int) -> bytes:
        data = self._call("OPEN", path, length=limit_bytes + 1).content
        if len(data) > limit_bytes:
            raise WebHdfsError(f"hdfs file {path} is larger than {limit_bytes} bytes")
        return data

    # -- the choke point
    def _call(self, op: str, path: str, **params) -> httpx.Response:
        query = {"op": op, **params}
        if self._user:
            query["user.name"] = self._user
        failure = "no WebHDFS URL"
        for base in self._urls:
            try:
                response = self._http.get(f"{base}/webhdfs/v1{path}", params=query)
            except httpx.HTTPError as exc:
                failure = f"WebHDFS at {base} unreachable: {type(exc).__name__}"
                continue
            if response.status_code == 200:
                return response
            kind, message = _remote_exception(response)
            if kind in FAILOVER_EXCEPTIONS:
                failure = f"{base} is a standby NameNode"
                continue
            if response.status_code == 404 or kind == "FileNotFoundException":
                raise HdfsNotFound(f"hdfs path {path} does not exist")
            if response.status_code == 401:
                raise WebHdfsError(_unauthenticated(base, op, path, self._user))
            if response.status_code == 403 or kind in ("AccessControlException", "SecurityException"):
                raise WebHdfsError(f"WebHDFS at {base} refused {op} {path} "
                                   f"(user {self._user or 'from the Kerberos ticket'}): {message}")
            raise WebHdfsError(f"WebHDFS at {base} answered {response.status_code} to {op} {path}: "
                               f"{kind or 'error'}: {message}")
        raise WebHdfsError(failure)


def _unauthenticated(base: str, op: str, path: str, user: Optional[str]) -> str:
    """A 401: the NameNode wants Kerberos (SPNEGO) and got no valid ticket."""
    if user:
        return (f"WebHDFS at {base} refused {op} {path} as user.name={user}: the cluster wants Kerberos "
                "(SPNEGO); run kinit (or give a keytab) and set hadoop.security.authentication=kerberos")
    return (f"WebHDFS at {base} refused {op} {path}: no valid Kerberos ticket for SPNEGO; run kinit, "
            "or point KRB5_CLIENT_KTNAME at a keytab")


def _field(response: httpx.Response, *keys: str):
    """``keys`` into the JSON answer; an answer of another shape is WebHDFS failing, not evidence."""
    try:
        value = response.json()
        for key in keys:
            value = value[key]
        return value
    except (ValueError, KeyError, TypeError):
        raise WebHdfsError(f"{response.request.url.copy_with(query=None)} answered no {'.'.join(keys)}") from None


def _remote_exception(response: httpx.Response):
    """(Java exception name, message) of a WebHDFS error answer."""
    try:
        remote = response.json().get("RemoteException") or {}
    except ValueError:
        return "", response.text[:200].strip()
    return str(remote.get("exception") or ""), str(remote.get("message") or "")[:300]
