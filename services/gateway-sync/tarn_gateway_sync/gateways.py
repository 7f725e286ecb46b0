"""Each gateway made to match what one deployment asks of it: observe through the adapter,
plan with plan.py, execute the plan only while this replica leads. A gateway that fails
counts its error and answers False; the caller retries with a full reconcile."""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable, Dict, Optional, Sequence, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.claims import Place, zookeeper_place
from tarn_shared.errors import UnavailableError
from tarn_shared.membership import Member

from .admission import Allowlist
from .drain_counts import open_requests
from .haproxy import HaproxyCommandError, RuntimeApi, SlotsExhaustedError
from .pending import pause
from .plan import (DeleteZnode, DrainClock, Layout, RoutingIntent, Target, detect_layout, plan_haproxy,
                   plan_znodes)
from .routing import Fleet, znode_data
from .settings import GatewaySyncSettings
from .sync_metrics import Clock, ErrorLog
from .zookeeper import Ensembles

log = logging.getLogger(__name__)
RESOLVE_TTL_S = 60.0
NOTHING = RoutingIntent(desired={}, draining={}, gone={}, authoritative=True)  # a place nobody owns


class Resolver:
    """HAProxy's `set server addr` takes an IP: instance host names are resolved here,
    cached for ``ttl_s``."""

    def __init__(self, errors: ErrorLog, clock: Clock = Clock(), ttl_s: float = RESOLVE_TTL_S) -> None:
        self._errors = errors
        self._clock = clock
        self._ttl_s = ttl_s
        self._cache: Dict[str, Tuple[str, float]] = {}

    async def targets(self, members: Dict[str, Member], grpc: bool = False) -> Dict[str, Target]:
        """One Target per address, at the instance's HTTP port (``grpc``: its gRPC port, and
        those without one left out); an address whose host does not resolve is left out."""
        targets = {}
        for address, member in members.items():
            assert member.endpoints is not None
            port = member.endpoints.grpc_port if grpc else member.endpoints.http_port
            if port is None:
                continue
            try:
                ip = await self.resolve(member.endpoints.host)
            except OSError as exc:
                self._errors("resolve", exc, address=address)
                continue
            targets[address] = Target(address, ip, port)
        return targets

    async def resolve(self, host: str) -> str:
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
            return host
        except OSError:
            pass
        cached = self._cache.get(host)
        if cached and cached[1] > self._clock.monotonic():
            return cached[0]
        info = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        ip = info[0][4][0]
        self._cache[host] = (ip, self._clock.monotonic() + self._ttl_s)
        return ip


class HaproxyGateway:
    """One HAProxy process; remembers since when each of its servers drains, and what the
    last sync of each backend saw still open for the leaving addresses (drain_counts.open_requests)."""

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
        self._grpc = frozenset(settings.grpc_backend_of().values())  # their servers speak h2

    async def sync(self, backend: str, intent: RoutingIntent, scope: Optional[Set[str]]) -> bool:
        settings = self._settings
        if backend not in self._allowed.backends and backend not in self._grpc:  # admission refused it already
            self._errors("refused", ValueError(f"backend {backend!r} is not allowed"), backend=backend)
            return False
        try:
            observed = await self.api.servers(backend)
            layout = Layout(settings.haproxy_layout) if settings.haproxy_layout != "auto" \
                else detect_layout(observed, settings.haproxy_slot_prefix)
            actions, self._drains[backend] = plan_haproxy(
                layout, intent, observed, now=self._clock.monotonic(), clock=self._drains.get(backend, DrainClock()),
                drain_timeout_s=settings.drain_timeout_s, server_prefix=settings.haproxy_server_prefix,
                slot_prefix=settings.haproxy_slot_prefix, scope=scope)
            if actions and self._may_write():
                await self.api.apply(backend, actions, "proto h2" if backend in self._grpc else "")
            self.open_requests[backend] = open_requests(intent.draining, observed)
            if intent is NOTHING:
                self._drains.pop(backend, None)
                self.open_requests.pop(backend, None)
            return True
        except SlotsExhaustedError as exc:
            self._errors("slots_exhausted", exc, haproxy=self.api.address, backend=backend)
        except HaproxyCommandError as exc:
            self._errors("haproxy_command", exc, haproxy=self.api.address, backend=backend)
        except UnavailableError as exc:
            self._errors("haproxy_unavailable", exc, haproxy=self.api.address, backend=backend)
        return False

    async def clean(self, backend: str) -> bool:
        """Every server gateway-sync placed in ``backend`` out (its deployment left it);
        False until this replica, leading, did it."""
        return await self.sync(backend, NOTHING, None) and self._may_write()


class ZookeeperGateway:
    """The znodes of every deployment, on the ensemble its record names (or the default),
    reached through the allowed ensemble's configured connection string only."""

    def __init__(self, ensembles: Ensembles, default_hosts: str, errors: ErrorLog,
                 may_write: Callable[[], bool], allowed: Allowlist) -> None:
        self._ensembles = ensembles
        self._default_hosts = default_hosts
        self._allowed = allowed
        self._errors = errors
        self._may_write = may_write

    async def sync(self, record: ev.DeploymentRecord, fleet: Fleet, routable: Dict[str, Member],
                   leaving: Set[str], scope: Optional[Set[str]]) -> bool:
        name = record.deployment
        try:
            ensemble, path = await self._open(zookeeper_place(record.zk_ensemble or self._default_hosts,
                                                              record.zk_path))
            observed = await ensemble.observe(path, sorted(scope) if scope is not None else None)
            session = ensemble.session_id
            if session is None:
                raise UnavailableError(f"ZooKeeper at {ensemble.hosts} has no session")
            actions = plan_znodes({a: znode_data(name, m) for a, m in routable.items()},
                                  leaving, observed, session_id=session,
                                  authoritative=fleet.authoritative, scope=scope)
            if actions and self._may_write():
                await ensemble.apply(path, actions)
            return True
        except UnavailableError as exc:
            self._errors("zookeeper", exc, deployment=name)
        return False

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


class RestartWatch:
    """A restarted or reloaded HAProxy (a new process identity) lost its runtime servers:
    ``on_restart`` asks for a full reconcile."""

    def __init__(self, apis: Sequence[RuntimeApi], on_restart: Callable[[], None], interval_s: float) -> None:
        self.identity: Dict[str, Optional[str]] = {}  # by address; None: unreachable
        self._apis = list(apis)
        self._on_restart = on_restart
        self._interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.look()
            await pause(stop, self._interval_s)

    async def look(self) -> None:
        for api in self._apis:
            try:
                identity: Optional[str] = await api.identity()
            except UnavailableError:
                identity = None
            before = self.identity.get(api.address, "")
            self.identity[api.address] = identity
            if identity is not None and before != "" and before != identity:
                log.warning("haproxy restarted or reloaded; reconciling", extra={"haproxy": api.address})
                self._on_restart()
