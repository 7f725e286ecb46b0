"""One deployment made routable everywhere: its Fleet turned into a routing intent, every
HAProxy and its ZooKeeper path synced (only the places it owns: ownership.Claims), and,
once all of them took a draining instance out, that instance announced unrouted (the
node-agent waits for it to stop Triton). Places nobody owns any more are cleaned here."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.claims import HAPROXY, places_of
from tarn_shared.errors import UnavailableError
from tarn_shared.membership import Member
from tarn_shared.streams import StreamPublisher

from .discovery import Discovery
from .drain_counts import total_open_requests
from .gateways import HaproxyGateway, ZookeeperGateway
from .model_sync import ModelRouting
from .ownership import Claims
from .pending import PendingWork
from .place_store import PlaceStore
from .plan import RoutingIntent
from .resolver import Resolver
from .routing import DRAINING, GONE, ROUTABLE, due_unrouted
from .sync_metrics import Clock, ErrorLog, Metrics

log = logging.getLogger(__name__)


class UnroutedAnnouncer:
    """Publishes instance-unrouted once per draining sequence of an instance, and again
    whenever the count of requests the gateways still hold for it changes."""

    def __init__(self, publisher: StreamPublisher, errors: ErrorLog, retry_soon: Callable[[], None]) -> None:
        self._publisher = publisher
        self._errors = errors
        self._retry_soon = retry_soon
        # deployment -> instance id -> (draining seq, open requests)
        self._sent: Dict[str, Dict[str, Tuple[int, Optional[int]]]] = {}

    async def announce_due(self, record: ev.DeploymentRecord, draining: Mapping[str, Member], full: bool,
                           open_requests: Mapping[str, Optional[int]]) -> None:
        """``draining``: the leaving members the gateways were just synced to (all of them when ``full``)."""
        sent = self._sent.setdefault(record.deployment, {})
        if full:  # what is no longer draining needs no more announcements
            leaving = {m.instance_id for m in draining.values()}
            self._sent[record.deployment] = sent = {i: v for i, v in sent.items() if i in leaving}
        for member, count in due_unrouted(draining, sent, open_requests).values():
            await self._announce(record, member, count)

    async def _announce(self, record: ev.DeploymentRecord, member: Member, count: Optional[int]) -> None:
        assert member.endpoints is not None
        name = record.deployment
        event = ev.InstanceUnrouted(deployment=name, app_id=member.app_id or record.app_id,
                                    instance_id=member.instance_id, seq=member.seq, endpoints=member.endpoints,
                                    models=list(member.models), open_requests=count)
        try:
            await self._publisher.publish(ev.lifecycle_stream(name), event, retry_for_s=2.0)
        except UnavailableError as exc:
            self._errors("redis", exc, deployment=name, container_id=member.instance_id)
            self._retry_soon()
            return
        sent = self._sent.setdefault(name, {})
        first = sent.get(member.instance_id, (-1, None))[0] < member.seq
        sent[member.instance_id] = (member.seq, count)
        if first:
            log.info("instance unrouted", extra={"deployment": name, "container_id": member.instance_id,
                                                 "address": member.endpoints.address, "open_requests": count})


class DeploymentSync:
    def __init__(self, discovery: Discovery, haproxies: Sequence[HaproxyGateway], zookeeper: ZookeeperGateway,
                 resolver: Resolver, work: PendingWork, announcer: UnroutedAnnouncer, metrics: Metrics,
                 claims: Claims, places: PlaceStore, clock: Clock = Clock(),
                 grpc_backends: Optional[Mapping[str, str]] = None, models: Optional[ModelRouting] = None) -> None:
        self._discovery = discovery
        self._haproxies = list(haproxies)
        self._models = models or ModelRouting([])  # per-model routing, where an HAProxy declares it
        self._zookeeper = zookeeper
        self._resolver = resolver
        self._work = work
        self._announcer = announcer
        self._metrics = metrics
        self.claims = claims
        self._places = places
        self._clock = clock
        self._grpc_backends = dict(grpc_backends or {})  # HTTP backend -> the gRPC one kept beside it

    def deployments(self) -> List[str]:
        return list(self._discovery.records)

    async def refresh_claims(self, leader: bool) -> None:
        await self._places.restore(self.claims)  # once: what a group that ran before owned
        self.claims.refresh(self._discovery.records)
        if leader:
            await self._places.save(self.claims)

    async def clean_released(self) -> bool:
        """Empty every place nobody owns any more; True when all of them were."""
        ok = True
        for place in sorted(self.claims.to_clean):
            if place.kind == HAPROXY:
                names = [place.name] + ([self._grpc_backends[place.name]] if place.name in self._grpc_backends else [])
                cleaned = all([await haproxy.clean(name) for haproxy in self._haproxies for name in names])
                cleaned = all([await self._models.clean(haproxy, name) for haproxy in self._haproxies
                               for name in names]) and cleaned
            else:
                cleaned = await self._zookeeper.clean(place)
            if cleaned:
                self.claims.cleaned(place)
            ok = ok and cleaned
        return ok

    def forget_applied(self) -> None:
        """What each gateway remembers applying may be stale: the next syncs read."""
        for gateway in [*self._haproxies, self._zookeeper, self._models]:
            gateway.forget_applied()

    async def observe(self, name: str) -> None:
        """Before a full sync, outside the write lock: each gateway it owns reads what it holds."""
        record = self._discovery.records.get(name)
        if record is None:
            return
        backend, znodes = places_of(record, self.claims.default_ensemble)
        grpc_backend = self._grpc_backends.get(record.haproxy_backend)
        for haproxy in self._haproxies if self.claims.owns(name, backend) else ():
            await haproxy.observe(record.haproxy_backend)
            if grpc_backend:
                await haproxy.observe(grpc_backend)
        if self.claims.owns(name, znodes):
            await self._zookeeper.observe(record)

    async def _sync_haproxies(self, record: ev.DeploymentRecord, intent: RoutingIntent,
                              grpc_intent: Optional[RoutingIntent], touched_models, scope: Optional[Set[str]],
                              fleet) -> Tuple[bool, List[Mapping[str, Optional[int]]]]:
        """Each HAProxy's backend (and gRPC backend) and model slots; the open requests each counted."""
        ok, counted = True, []
        grpc_backend = self._grpc_backends.get(record.haproxy_backend)
        backends = [(record.haproxy_backend, intent, False)] + \
            ([(grpc_backend, grpc_intent, True)] if grpc_backend and grpc_intent is not None else [])
        for haproxy in self._haproxies:
            for backend, backend_intent, grpc in backends:
                ok = await haproxy.sync(backend, backend_intent, scope) and ok
                counted.append(haproxy.open_requests.get(backend, {}))
                models_ok, slot_counts = await self._models.sync(
                    haproxy, backend, record.deployment, backend_intent, touched_models, scope, fleet, self._resolver,
                    grpc, record.cold_models)
                ok, counted = models_ok and ok, counted + slot_counts
        return ok, counted

    async def sync(self, name: str, scope: Optional[Set[str]]) -> bool:
        """Make every gateway match the fleet for ``scope`` (None: everything). True when all
        of them did; then due instance-unrouted events are announced. The work is the scope's:
        only its addresses are looked up in the fleet, planned and encoded."""
        record, fleet = self._discovery.records.get(name), self._discovery.fleets.get(name)
        if record is None or fleet is None:
            return True  # removed since the loop listed it: the reconcile cleans its places
        # Read once, before any await: the fleet changes in place as events arrive.
        routable, draining, gone = (fleet.routes(kind, scope) for kind in (ROUTABLE, DRAINING, GONE))
        authoritative = fleet.authoritative
        touched_models = self._models.update(name, routable, draining, scope)
        targets = self._resolver.targets
        intent = RoutingIntent(desired=await targets(routable), draining=await targets(draining),
                               gone=await targets(gone), authoritative=authoritative)
        grpc_backend = self._grpc_backends.get(record.haproxy_backend)
        # The same instances at their gRPC ports, keyed by the same addresses (scope, drain counts).
        grpc_intent = RoutingIntent(
            desired=await targets(routable, grpc=True), draining=await targets(draining, grpc=True),
            gone=await targets(gone, grpc=True), authoritative=authoritative) if grpc_backend else None
        # Only what it owns as of the last refresh: a record new or moved since owns nothing
        # yet, and is not synced (False) until a refresh decides its places.
        backend, znodes = places_of(record, self.claims.default_ensemble)
        refused = self.claims.refused(name)
        ok = all(self.claims.owns(name, place) or place in refused for place in (backend, znodes))
        # The HAProxies and ZooKeeper at once: a change waits for the slower, not for both in turn.
        zk_sync = self._zookeeper.sync(record, authoritative, routable, set(draining) | set(gone), scope) \
            if self.claims.owns(name, znodes) else _done()
        results = await asyncio.gather(
            self._sync_haproxies(record, intent, grpc_intent, touched_models, scope, fleet)
            if self.claims.owns(name, backend) else _done((True, [])), zk_sync, return_exceptions=True)
        for result in results:  # both finished before anything is raised: nothing writes after the lock is let go
            if isinstance(result, BaseException):
                raise result
        (haproxies_ok, counted), zk_ok = results
        ok = ok and haproxies_ok and zk_ok
        self._metrics.routed.labels(name).set(fleet.count(ROUTABLE))
        self._work.watch_draining(name, fleet.draining_addresses() | self._models.leaving(name))
        if not ok:
            return False
        now = self._clock.wall()
        for address, since in self._work.settled(name, scope).items():
            change = "add" if address in routable else "remove"
            self._metrics.propagation.labels(change).observe(max(0.0, now - since))
        await self._announcer.announce_due(record, draining, scope is None, total_open_requests(counted))
        await self._models.announce_due(record)
        return True


async def _done(result=True):
    """What a gateway this deployment does not own answers (it syncs nothing there)."""
    return result
