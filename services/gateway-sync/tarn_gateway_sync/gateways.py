"""Each gateway made to match what one deployment asks of it: observe through the adapter,
plan with plan.py, execute the plan only while this replica leads. A gateway that fails
counts its error and answers False; the caller retries with a full reconcile."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.claims import Place, zookeeper_place
from tarn_shared.errors import UnavailableError
from tarn_shared.membership import Member

from .admission import Allowlist
from .drain_counts import open_requests
from .haproxy import HaproxyCommandError, RuntimeApi, SlotsExhaustedError
from .model_routes import is_slot_of
from .applied import AppliedBackend, AppliedZnodes, merged, merged_znodes, observed_spread, to_verify
from .plan import (Admin, DeleteZnode, DrainClock, Layout, ObservedZnode, RoutingIntent, ServerState,
                   detect_layout, plan_haproxy, plan_znodes)
from .routing import znode_data
from .settings import GatewaySyncSettings
from .sync_metrics import Clock, ErrorLog
from .zookeeper import Ensembles

NOTHING = RoutingIntent(desired={}, draining={}, gone={}, authoritative=True)  # a place nobody owns


class HaproxyGateway:
    """One HAProxy process; remembers what it applied to each backend (applied.AppliedBackend),
    since when each of its servers drains, and what the last sync of each backend saw still
    open for the leaving addresses (drain_counts.open_requests). An event's sync plans from
    that memory; only a full sync (scope None) reads ``show servers state``."""

    def __init__(self, api: RuntimeApi, settings: GatewaySyncSettings, errors: ErrorLog,
                 may_write: Callable[[], bool], allowed: Allowlist, clock: Clock = Clock()) -> None:
        self.api = api
        self._allowed = allowed
        self._settings = settings
        self._errors = errors
        self._may_write = may_write
        self._clock = clock
        self._drains: Dict[str, DrainClock] = {}  # by backend
        self.open_requests: Dict[str, Dict[str, Optional[int]]] = {}  # by backend, then address
        self._applied: Dict[str, AppliedBackend] = {}
        self._read: Dict[str, List[ServerState]] = {}  # by backend: a reconcile's read, taken before the lock
        self._touched: Dict[str, Set[str]] = {}  # by backend: servers applies changed since that read began
        self._grpc = frozenset(settings.grpc_backend_of().values())  # their servers speak h2

    async def observe(self, backend: str) -> None:
        """A full sync's read, taken before it holds the write lock; what applies change
        meanwhile is noted and wins over it. A failed read is left to the sync to report."""
        if not self._allows(backend):
            return
        self._read.pop(backend, None)
        self._touched[backend] = set()
        try:
            self._read[backend] = await self.api.servers(backend)
        except (HaproxyCommandError, UnavailableError):
            self._touched.pop(backend, None)

    def _allows(self, backend: str) -> bool:
        allowed = self._allowed.backends
        return backend in allowed or backend in self._grpc or is_slot_of(backend, allowed | self._grpc)

    async def sync(self, backend: str, intent: RoutingIntent, scope: Optional[Set[str]]) -> bool:
        settings = self._settings
        if not self._allows(backend):  # admission refused it already
            self._errors("refused", ValueError(f"backend {backend!r} is not allowed"), backend=backend)
            return False
        try:
            applied, observed = await self._observed(backend, intent, scope)
            actions, drains = plan_haproxy(
                applied.layout, intent, observed, now=self._clock.monotonic(),
                clock=self._drains.get(backend, DrainClock()), drain_timeout_s=settings.drain_timeout_s,
                server_prefix=settings.haproxy_server_prefix, slot_prefix=settings.haproxy_slot_prefix, scope=scope)
            self._drains[backend] = self._kept_drains(backend, observed, drains) if scope is not None else drains
            if actions and self._may_write():  # each new server with the HAProxy id chosen for it
                await self._execute(backend, applied, applied.with_ids(actions))
            self.open_requests[backend] = open_requests(intent.draining, observed)
            if intent is NOTHING:
                self._forget(backend)
            return True
        except SlotsExhaustedError as exc:
            self._errors("slots_exhausted", exc, haproxy=self.api.address, backend=backend)
        except HaproxyCommandError as exc:
            self._errors("haproxy_command", exc, haproxy=self.api.address, backend=backend)
        except UnavailableError as exc:
            self._errors("haproxy_unavailable", exc, haproxy=self.api.address, backend=backend)
        return False

    async def _observed(self, backend: str, intent: RoutingIntent,
                        scope: Optional[Set[str]]) -> Tuple[AppliedBackend, List[ServerState]]:
        """The servers a plan looks at: from memory for an event's scope, else read (the
        reconcile's read taken before the lock, or now)."""
        applied = self._applied.get(backend)
        if scope is not None and applied is not None:
            endpoints = [t.endpoint for part in (intent.desired, intent.draining, intent.gone) for t in part.values()]
            observed = applied.around(endpoints, len(intent.desired))
            leaving = {t.endpoint for t in intent.draining.values()}
            # A drain ends when its sessions do: read them only while one of the scope's drains.
            draining = [s for s in observed if s.admin is Admin.DRAIN and s.endpoint in leaving]
            if draining:
                applied.with_sessions(await self.api.sessions(backend, draining))
                observed = applied.around(endpoints, len(intent.desired))
            return applied, observed
        read = self._read.pop(backend, None) if scope is None else None
        touched = self._touched.pop(backend, set()) if scope is None else set()
        observed = merged(read, touched, applied) if read is not None else await self.api.servers(backend)
        settings = self._settings
        layout = Layout(settings.haproxy_layout) if settings.haproxy_layout != "auto" \
            else detect_layout(observed, settings.haproxy_slot_prefix)
        self._applied[backend] = applied = AppliedBackend(layout, observed, settings.haproxy_slot_prefix)
        return applied, observed

    async def _execute(self, backend: str, applied: AppliedBackend, actions) -> None:
        try:
            h2 = backend in self._grpc or is_slot_of(backend, self._grpc)  # a gRPC backend's model slots too
            await self.api.apply(backend, actions, "proto h2" if h2 else "")
        except (HaproxyCommandError, UnavailableError, SlotsExhaustedError):
            for memory in (self._applied, self._read, self._touched):  # partly executed: read again next time
                memory.pop(backend, None)
            raise
        changed = applied.record(actions)
        if backend in self._touched:
            self._touched[backend] |= changed

    def _kept_drains(self, backend: str, looked_at: List[ServerState], drains: DrainClock) -> DrainClock:
        """A scoped plan returns the drain clocks of the servers it looked at; the others keep theirs."""
        names = {s.name for s in looked_at}
        since = {n: t for n, t in self._drains.get(backend, DrainClock()).since.items() if n not in names}
        since.update(drains.since)
        return DrainClock(since)

    def forget_applied(self) -> None:
        for memory in (self._applied, self._read, self._touched):
            memory.clear()

    def _forget(self, backend: str) -> None:
        for memory in (self._drains, self.open_requests, self._applied, self._read, self._touched):
            memory.pop(backend, None)

    async def clean(self, backend: str) -> bool:
        """Every server gateway-sync placed in ``backend`` out (its deployment left it);
        False until this replica, leading, did it."""
        return await self.sync(backend, NOTHING, None) and self._may_write()


class ZookeeperGateway:
    """The znodes of every deployment, on the ensemble its record names (or the default),
    reached through the allowed ensemble's configured connection string only. Remembers
    what it wrote under each path in this session (applied.AppliedZnodes), so an event's
    sync reads nothing, and each znode's payload, encoded once per change of its member."""

    def __init__(self, ensembles: Ensembles, default_hosts: str, errors: ErrorLog,
                 may_write: Callable[[], bool], allowed: Allowlist) -> None:
        self._ensembles = ensembles
        self._default_hosts = default_hosts
        self._allowed = allowed
        self._errors = errors
        self._may_write = may_write
        self._applied: Dict[Tuple[str, str], AppliedZnodes] = {}  # by (ensemble, path)
        self._read: Dict[Tuple[str, str], Tuple[Dict[str, ObservedZnode], Optional[int]]] = {}  # and its session
        self._touched: Dict[Tuple[str, str], Set[str]] = {}
        self._payloads: Dict[str, Dict[str, Tuple[Member, bytes]]] = {}  # by deployment, then address
        self._rounds: Dict[Tuple[str, str], int] = {}  # full reads taken, by (ensemble, path)

    async def observe(self, record: ev.DeploymentRecord) -> None:
        """A full sync's read, taken before the write lock (see HaproxyGateway.observe)."""
        try:
            ensemble, path = await self._open(self._place(record))
        except UnavailableError:
            return
        key, session = (ensemble.hosts, path), ensemble.session_id
        self._read.pop(key, None)
        self._touched[key] = set()
        written = self._applied.get(key)
        written = written if written is not None and written.session_id == session else None
        self._rounds[key] = round_ = self._rounds.get(key, -1) + 1
        try:
            children = await ensemble.children(path)
            asked = to_verify(children, written, round_)
            self._read[key] = (observed_spread(children, await ensemble.observe(path, asked), asked, written), session)
        except UnavailableError:
            self._touched.pop(key, None)

    async def sync(self, record: ev.DeploymentRecord, authoritative: bool, routable: Dict[str, Member],
                   leaving: Set[str], scope: Optional[Set[str]]) -> bool:
        name = record.deployment
        try:
            ensemble, path = await self._open(self._place(record))
            session = ensemble.session_id
            if session is None:
                raise UnavailableError(f"ZooKeeper at {ensemble.hosts} has no session")
            key = (ensemble.hosts, path)
            applied, observed = await self._observed(ensemble, key, session, scope)
            actions = plan_znodes(self._encoded(name, routable, scope), leaving, observed, session_id=session,
                                  authoritative=authoritative, scope=scope)
            if actions and self._may_write():
                try:
                    await ensemble.apply(path, actions)
                except UnavailableError:
                    for memory in (self._applied, self._read, self._touched):  # read again next time
                        memory.pop(key, None)
                    raise
                if applied is not None:
                    changed = applied.record(actions)
                    if key in self._touched:
                        self._touched[key] |= changed
            return True
        except UnavailableError as exc:
            self._errors("zookeeper", exc, deployment=name)
        return False

    async def _observed(self, ensemble, key, session: int, scope: Optional[Set[str]]):
        """The znodes a plan looks at: from what this session wrote for an event's scope, else read."""
        applied = self._applied.get(key)
        if applied is not None and applied.session_id != session:
            del self._applied[key]  # a new session: the old one's nodes are gone
            applied = None
        if scope is not None:
            if applied is not None:
                return applied, applied.around(scope)
            return None, await ensemble.observe(key[1], sorted(scope))  # no full read yet in this session
        read, touched = self._read.pop(key, None), self._touched.pop(key, set())
        if read is not None and read[1] == session:
            observed = merged_znodes(read[0], touched, applied)
        else:
            observed = await ensemble.observe(key[1])
        self._applied[key] = applied = AppliedZnodes(session, observed)
        return applied, observed

    def forget_applied(self) -> None:
        for memory in (self._applied, self._read, self._touched):
            memory.clear()

    def _encoded(self, deployment: str, routable: Dict[str, Member], scope: Optional[Set[str]]) -> Dict[str, bytes]:
        """Each routable address's payload, encoded again only when its member changed."""
        known = self._payloads.setdefault(deployment, {})
        if scope is None:  # a full sync: the addresses no longer routable are forgotten
            known = self._payloads[deployment] = {a: known[a] for a in routable if a in known}
        out = {}
        for address, member in routable.items():
            cached = known.get(address)
            if cached is None or cached[0] is not member:
                cached = known[address] = (member, znode_data(deployment, member))
            out[address] = cached[1]
        return out

    def _place(self, record: ev.DeploymentRecord) -> Place:
        return zookeeper_place(record.zk_ensemble or self._default_hosts, record.zk_path)

    async def clean(self, place: Place) -> bool:
        """Every ephemeral znode under the place's path deleted (persistent ones, such as
        another deployment's path inside it, are not ours)."""
        try:
            ensemble, path = await self._open(place)
            observed = await ensemble.observe(path)
            actions = [DeleteZnode(n) for n, node in sorted(observed.items()) if node.ephemeral_owner]
            if actions and not self._may_write():
                return False
            await ensemble.apply(path, actions)
            self._applied.pop((ensemble.hosts, path), None)
            return True
        except UnavailableError as exc:
            self._errors("zookeeper", exc, zk_path=place.name)
        return False

    async def _open(self, place: Place):
        """The allowed ensemble holding ``place``, and the path within it; admission refused
        any other place already, so this raises only for a bug."""
        where = self._allowed.locate(place)
        if where is None:
            raise UnavailableError(f"{place.describe()} is not allowed; not connecting")
        connection, path = where
        return await self._ensembles.open(connection), path
