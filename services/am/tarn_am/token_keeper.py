"""Fresh HDFS delegation tokens for new containers (token_policy.py decides when).

``WebHdfsTokens`` is the adapter: WebHDFS's GETDELEGATIONTOKEN and RENEWDELEGATIONTOKEN at
each file system's NameNode(s), over SPNEGO as the principal of the keytab shipped to the AM
(MIT's credential store: the keytab as client keytab, tickets in this process's memory).
``TokenKeeper`` holds the newest token per file system, re-obtains it when due, and gives the
environment variable a new container carries them in (base64 of a token storage file).
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Tuple

import httpx

from tarn_shared.errors import TarnError
from tarn_shared.hadoop_conf import read_hadoop_conf, webhdfs_urls_from_conf
from tarn_shared.hadoop_tokens import (HDFS_TOKEN_KINDS, HadoopToken, TokenFileError, parse_token_storage,
                                       token_storage_bytes, utc_text)
from tarn_shared.kerberos_errors import explained

from . import token_policy as policy

if TYPE_CHECKING:
    from .settings import AmSettings

log = logging.getLogger("tarn_am.tokens")
AM_TOKENS_ENV = "TARN_HDFS_DELEGATION_TOKENS"  # the node-agent reads it (tarn_node_agent.tokens)
CCACHE = "MEMORY:tarn-am-tokens"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class TokenError(TarnError):
    """A delegation token could not be got or renewed; the message says why, in one line."""


class WebHdfsTokens:
    def __init__(self, principal: str, keytab: str, conf_dir: Optional[str]) -> None:
        self.principal = principal
        self.keytab = keytab
        self._conf = read_hadoop_conf(conf_dir)

    def obtain(self, file_system: str) -> Tuple[HadoopToken, int]:
        """A new token for ``file_system`` (``hdfs://authority``, or "" for the default) and
        the expiry the NameNode gives it."""
        authority = file_system.split("://", 1)[-1].split("/", 1)[0] if file_system else ""
        urls = webhdfs_urls_from_conf(self._conf, authority)
        if not urls:
            raise TokenError(f"$HADOOP_CONF_DIR names no WebHDFS address for {file_system or 'the default file system'}")
        with httpx.Client(timeout=TIMEOUT, auth=self._auth(), trust_env=False) as http:
            answer = self._call(http, urls, "GET", "GETDELEGATIONTOKEN", renewer=self.principal)
            token = HadoopToken.from_url_string(str(answer["Token"]["urlString"]),
                                                alias=f"tarn-am:{file_system or 'default'}")
            expiry = self._call(http, urls, "PUT", "RENEWDELEGATIONTOKEN", token=token.url_string())["long"]
        return token, int(expiry)

    def _auth(self) -> httpx.Auth:
        try:
            import gssapi
            from httpx_gssapi import OPTIONAL, HTTPSPNEGOAuth
        except ImportError as exc:
            raise TokenError(f"re-obtaining tokens needs tarn-am's 'kerberos' extra (httpx-gssapi): {exc}") from None
        try:
            name = gssapi.Name(self.principal, gssapi.NameType.kerberos_principal)
            creds = gssapi.Credentials(name=name, usage="initiate",
                                       store={"client_keytab": self.keytab, "ccache": CCACHE})
            creds.lifetime  # MIT acquires lazily: ask the KDC now, so its refusal is reported here
        except gssapi.exceptions.GSSError as exc:
            raise TokenError(f"cannot log in: {explained(str(exc))}") from None
        return HTTPSPNEGOAuth(mutual_authentication=OPTIONAL, creds=creds)

    @staticmethod
    def _call(http: httpx.Client, urls: str, method: str, op: str, **params) -> Dict:
        failure = "no WebHDFS URL"
        for base in (u.rstrip("/") for u in urls.split(";") if u):
            try:
                response = http.request(method, f"{base}/webhdfs/v1/", params={"op": op, **params})
                body = response.json() if response.content else {}
            except httpx.HTTPError as exc:
                failure = f"WebHDFS at {base} unreachable: {type(exc).__name__}: {explained(str(exc))}"
                continue
            except ValueError:
                body = {}
            if response.status_code == 200 and isinstance(body, dict):
                return body
            remote = (body.get("RemoteException") or {}) if isinstance(body, dict) else {}
            if remote.get("exception") == "StandbyException":
                failure = f"{base} is a standby NameNode"
                continue
            message = remote.get("message") or response.text[:300].strip()
            raise TokenError(f"WebHDFS at {base} answered {response.status_code} to {op}: {explained(str(message))}")
        raise TokenError(failure)


class TokenKeeper:
    def __init__(self, source: WebHdfsTokens, file_systems: List[str],
                 clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self._file_systems = file_systems or [""]
        self._clock = clock
        self._held: Dict[str, policy.HeldToken] = {}
        self._failed: Dict[str, bool] = {}

    def container_env(self) -> Mapping[str, str]:
        """What a new container gets: the newest token per file system (none yet: nothing)."""
        now_ms = int(self._clock() * 1000)
        live = [h.token for h in self._held.values() if h.expires_ms > now_ms]
        return {AM_TOKENS_ENV: base64.b64encode(token_storage_bytes(live)).decode()} if live else {}

    def refresh_due(self) -> float:
        """Re-obtain every token that is due (blocking); seconds until the next is."""
        waits = []
        for fs in self._file_systems:
            current = self._held.get(fs)
            if policy.due(current, int(self._clock() * 1000)):
                self._failed[fs] = not self._refresh(fs, current)
            waits.append(policy.next_check_s(self._held.get(fs), int(self._clock() * 1000), self._failed.get(fs, False)))
        return min(waits)

    def _refresh(self, fs: str, current: Optional[policy.HeldToken]) -> bool:
        try:
            token, expiry_ms = self._source.obtain(fs)
            fresh = policy.held(fs, token, expiry_ms)
        except (TarnError, ValueError, KeyError, TypeError) as exc:
            log.error(policy.renewal_failure(fs, self._source.principal, self._source.keytab, str(exc), current,
                                             int(self._clock() * 1000)))
            return False
        self._held[fs] = fresh
        log.info("re-obtained an HDFS delegation token for new containers",
                 extra={"file_system": fs or "default", "token": token.describe(),
                        "expires": utc_text(fresh.expires_ms), "refresh_at": utc_text(fresh.refresh_at_ms)})
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait_s = await asyncio.to_thread(self.refresh_due)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait_s)
            except asyncio.TimeoutError:
                pass


def token_keeper_for(settings: "AmSettings", environ: Mapping[str, str]) -> Optional[TokenKeeper]:
    """The keeper of a deployment submitted with a keytab; without one, a warning of when its
    first tokens end."""
    if settings.kerberos_keytab is None:
        _warn_unrenewable(environ)
        return None
    source = WebHdfsTokens(settings.kerberos_principal, str(settings.kerberos_keytab.resolve()),
                           environ.get("HADOOP_CONF_DIR"))
    return TokenKeeper(source, list(settings.token_file_systems))


def _warn_unrenewable(environ: Mapping[str, str]) -> None:
    location = environ.get("HADOOP_TOKEN_FILE_LOCATION")
    try:
        tokens = parse_token_storage(Path(location).read_bytes()) if location else []
    except (OSError, TokenFileError):
        return
    for token in tokens:
        warning = policy.no_keytab_warning(token) if token.kind in HDFS_TOKEN_KINDS else None
        if warning:
            log.warning(warning)
