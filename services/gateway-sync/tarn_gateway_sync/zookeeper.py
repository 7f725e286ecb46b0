"""ZooKeeper through kazoo: one client per ensemble, its session watched as a state
machine, znodes read and written with ``client.retry`` (the leader election is leadership.py).

SUSPENDED is not LOST: writes pause until the connection is back. After LOST, kazoo
opens a new session, the old ephemeral nodes are gone, and ``on_new_session`` asks the
service for a full reconcile. Listeners only set flags and hand work to the event loop."""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState, KeeperState
from kazoo.security import ACL, make_acl
from kazoo.retry import KazooRetry

from tarn_shared.errors import ConfigError, UnavailableError

from .plan import CreateZnode, DeleteZnode, ObservedZnode, ReplaceZnode, ZnodeAction

log = logging.getLogger(__name__)
_PERMS = {"r": "read", "w": "write", "c": "create", "d": "delete", "a": "admin"}
OBSERVE_BATCH = 200
# A multi is one request: well under ZooKeeper's jute.maxbuffer (1 MB), past which the server drops the connection.
MULTI_BYTES = 256 * 1024
MULTI_OPS = 1000


def parse_acl(specs: Sequence[str]) -> Optional[List[ACL]]:
    """``scheme:id:perms`` (``world:anyone:r``, ``digest:user:BASE64HASH:cdrwa``,
    ``sasl:principal:cdrwa``, ``ip:10.0.0.0/8:r``); empty means ZooKeeper's open ACL."""
    acls = []
    for spec in specs:
        scheme, _, rest = spec.partition(":")
        ident, _, perms = rest.rpartition(":")
        if not scheme or not ident or not perms or any(p not in _PERMS for p in perms):
            raise ConfigError(f"invalid ZooKeeper ACL {spec!r}: expected scheme:id:perms with perms from 'rwcda'")
        acls.append(make_acl(scheme, ident, **{_PERMS[p]: True for p in perms}))
    return acls or None


class Ensemble:
    """One ZooKeeper ensemble (a connection string, possibly with a chroot)."""

    def __init__(self, hosts: str, *, session_timeout_s: float = 10.0, auth: Optional[Sequence[tuple]] = None,
                 sasl_options: Optional[Dict[str, str]] = None, acl: Optional[List[ACL]] = None,
                 on_new_session: Callable[["Ensemble"], None] = lambda e: None,
                 explain_auth_failure: Callable[[str], Optional[str]] = lambda hosts: None,
                 loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        self.hosts = hosts
        self.acl = acl
        self._explain_auth_failure = explain_auth_failure
        self._relogin: Optional[asyncio.Task] = None
        self._login_refused = self._closed = False
        self._on_new_session = on_new_session
        self._loop = loop or asyncio.get_event_loop()
        self._client_options = dict(hosts=hosts, timeout=session_timeout_s, auth_data=list(auth or []) or None,
                                    sasl_options=sasl_options or None)
        self.client = self._new_client()
        self.lost = threading.Event()  # set while the last session is gone and no new one exists
        self._session: Optional[int] = None

    def _new_client(self) -> KazooClient:
        client = KazooClient(**self._client_options, connection_retry=KazooRetry(max_tries=-1, max_delay=2.0),
                             command_retry=KazooRetry(max_tries=5, max_delay=1.0, deadline=10.0))
        client.add_listener(self._on_state)
        return client

    # kazoo calls this from its own thread: set flags, hand the rest to the loop.
    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self.lost.set()
            log.warning("zookeeper session lost", extra={"zk_hosts": self.hosts})
            if self.client.client_state == KeeperState.AUTH_FAILED:
                self._login_refused = True
                self._loop.call_soon_threadsafe(self._auth_failed)
        elif state == KazooState.SUSPENDED:
            log.warning("zookeeper connection suspended; writes paused", extra={"zk_hosts": self.hosts})
        elif state == KazooState.CONNECTED:
            self._loop.call_soon_threadsafe(self._connected)

    def _connected(self) -> None:
        session = self.session_id
        if session is not None and session != self._session:
            if self._session is not None:
                log.warning("zookeeper session renewed; restoring znodes", extra={"zk_hosts": self.hosts})
            self._session = session
            self.lost.clear()
            self._on_new_session(self)

    # After AUTH_FAILED kazoo stops connecting for good (and a restart would send its queued
    # Close first): say why, and log in again with a new client, with backoff.
    def _auth_failed(self) -> None:
        if not self._closed and (self._relogin is None or self._relogin.done()):
            self._relogin = self._loop.create_task(self._log_in_again())

    async def _log_in_again(self, first_delay_s: float = 1.0, max_delay_s: float = 30.0,
                            settle_s: float = 1.0) -> None:
        delay_s = first_delay_s
        while self._login_refused and not self._closed:
            self._login_refused = False
            log.error(await self._refusal(), extra={"zk_hosts": self.hosts, "retry_in_s": delay_s})
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, max_delay_s)
            refused, self.client = self.client, self._new_client()
            refused.remove_listener(self._on_state)
            await asyncio.to_thread(_close, refused)
            try:
                await asyncio.to_thread(self.client.start, self._client_options["timeout"] + 5)
            except KazooTimeoutError:
                self._login_refused = True
            await asyncio.sleep(settle_s)  # the SASL handshake follows CONNECTED

    async def _refusal(self) -> str:
        why = await asyncio.to_thread(self._explain_auth_failure, self.hosts)
        return why or f"ZooKeeper at {self.hosts} refused the SASL login"

    @property
    def session_id(self) -> Optional[int]:
        client_id = self.client.client_id
        return client_id[0] if client_id and self.client.connected else None

    @property
    def writable(self) -> bool:
        return self.client.state == KazooState.CONNECTED

    async def start(self, timeout_s: float = 15.0) -> None:
        try:
            await asyncio.to_thread(self.client.start, timeout_s)
        except KazooTimeoutError:
            self._closed = True  # kazoo closed it; the caller opens a new one
            if self._login_refused:
                raise UnavailableError(await self._refusal()) from None
            raise UnavailableError(f"ZooKeeper at {self.hosts} did not answer within {timeout_s}s") from None
        self._connected()

    async def stop(self) -> None:
        self._closed = True
        if self._relogin is not None:
            self._relogin.cancel()
        await asyncio.to_thread(_close, self.client)

    async def observe(self, path: str, names: Optional[Sequence[str]] = None) -> Dict[str, ObservedZnode]:
        """The children of ``path`` (or just ``names``) with data and owner, OBSERVE_BATCH at a time: the
        session answers in order, so an apply's write waits behind one batch, not behind every read."""
        children = list(names) if names is not None else await self.children(path)
        found: Dict[str, ObservedZnode] = {}
        for start in range(0, len(children), OBSERVE_BATCH):
            batch = children[start:start + OBSERVE_BATCH]
            found.update(await self._call(lambda batch=batch: self.client.retry(self._read, path, batch)))
        return found

    async def children(self, path: str) -> List[str]:
        return await self._call(lambda: self.client.retry(self._children, path))

    def _read(self, path: str, names: Sequence[str]) -> Dict[str, ObservedZnode]:
        pending = [(name, self.client.get_async(f"{path}/{name}")) for name in names]
        found = {}
        for name, result in pending:
            try:
                data, stat = result.get(timeout=10)
            except NoNodeError:
                continue
            found[name] = ObservedZnode(name, data, stat.ephemeralOwner)
        return found

    def _children(self, path: str) -> List[str]:
        try:
            return self.client.get_children(path)
        except NoNodeError:
            return []

    async def apply(self, path: str, actions: Sequence[ZnodeAction]) -> None:
        if not actions:
            return
        if not self.writable:
            raise UnavailableError(f"ZooKeeper at {self.hosts} is not connected; writes paused")

        ops: List[Tuple[str, Optional[bytes]]] = []  # (node, data), data None for a delete, in the plan's order
        for action in actions:
            node = f"{path}/{action.name}"
            if isinstance(action, (DeleteZnode, ReplaceZnode)):
                ops.append((node, None))
            if isinstance(action, (CreateZnode, ReplaceZnode)):
                ops.append((node, action.data))

        def write() -> None:
            self.client.ensure_path(path, acl=self.acl)
            for chunk in _chunks(ops):
                if not self._committed(chunk):
                    self._pipelined(chunk)
        await self._call(write)

    def _committed(self, ops: Sequence[Tuple[str, Optional[bytes]]]) -> bool:
        """The ops as one multi (one request, one log commit). All or nothing: anything refused
        (a node gone already, one another session holds) leaves False for ``_pipelined``."""
        transaction = self.client.transaction()
        for node, data in ops:
            if data is None:
                transaction.delete(node)
            else:
                transaction.create(node, data, acl=self.acl, ephemeral=True)
        try:
            results = transaction.commit_async().get(timeout=10)
        except (KazooException, KazooTimeoutError):  # the connection dropped: it may or may not have committed
            return False
        return not any(isinstance(result, Exception) for result in results)

    def _pipelined(self, ops: Sequence[Tuple[str, Optional[bytes]]]) -> None:
        """Each op on its own, all sent at once; what fails is done again alone, retried."""
        sent = [(node, data, self.client.delete_async(node) if data is None else
                 self.client.create_async(node, data, acl=self.acl, ephemeral=True)) for node, data in ops]
        for node, data, result in sent:
            try:
                result.get(timeout=10)
            except NoNodeError:
                pass  # deleted already
            except KazooException:  # exists already, or the connection dropped
                if data is None:
                    self.client.retry(self._delete, node)
                else:
                    self.client.retry(self._create, node, data)

    def _delete(self, node: str) -> None:
        try:
            self.client.delete(node)
        except NoNodeError:
            pass

    def _create(self, node: str, data: bytes) -> None:
        try:
            self.client.create(node, data, acl=self.acl, ephemeral=True)
        except NodeExistsError:
            # Created by an earlier try of this retry, or by another session: own it.
            _, stat = self.client.get(node)
            if stat.ephemeralOwner != self.client.client_id[0]:
                self.client.delete(node)
                self.client.create(node, data, acl=self.acl, ephemeral=True)
            else:
                self.client.set(node, data)

    async def _call(self, fn):
        try:
            return await asyncio.to_thread(fn)
        except (KazooException, KazooTimeoutError) as exc:
            raise UnavailableError(f"ZooKeeper at {self.hosts}: {type(exc).__name__} {exc}") from None


def _close(client: KazooClient) -> None:
    client.stop()
    client.close()


class Ensembles:
    """One Ensemble per connection string, opened on first use and kept."""

    def __init__(self, *, session_timeout_s: float, auth: Optional[Sequence[tuple]] = None,
                 sasl_options: Optional[Dict[str, str]] = None, acl: Optional[List[ACL]] = None,
                 on_new_session: Callable[[Ensemble], None] = lambda e: None,
                 explain_auth_failure: Callable[[str], Optional[str]] = lambda hosts: None) -> None:
        self._options = dict(session_timeout_s=session_timeout_s, auth=auth, sasl_options=sasl_options, acl=acl,
                             on_new_session=on_new_session, explain_auth_failure=explain_auth_failure)
        self._open: Dict[str, Ensemble] = {}

    def get(self, hosts: str) -> Optional[Ensemble]:
        return self._open.get(hosts)

    async def open(self, hosts: str) -> Ensemble:
        ensemble = self._open.get(hosts)
        if ensemble is None:
            ensemble = Ensemble(hosts, loop=asyncio.get_running_loop(), **self._options)
            await ensemble.start()
            self._open[hosts] = ensemble
        return ensemble

    def states(self) -> Dict[str, str]:
        return {hosts: e.client.state for hosts, e in self._open.items()}

    async def stop(self) -> None:
        for ensemble in self._open.values():
            await ensemble.stop()


def _chunks(ops: Sequence[Tuple[str, Optional[bytes]]]) -> Iterator[List[Tuple[str, Optional[bytes]]]]:
    """Consecutive runs of ops within MULTI_OPS and about MULTI_BYTES each."""
    chunk: List[Tuple[str, Optional[bytes]]] = []
    size = 0
    for node, data in ops:
        cost = len(node) + len(data or b"") + 64  # and the op's own header and ACL
        if chunk and (len(chunk) >= MULTI_OPS or size + cost > MULTI_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((node, data))
        size += cost
    if chunk:
        yield chunk
