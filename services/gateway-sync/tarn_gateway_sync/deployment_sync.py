"""One deployment made routable everywhere: its Fleet turned into a routing intent, every
HAProxy and its ZooKeeper path synced (only the places it owns: ownership.Claims), and,
once all of them took a draining instance out, that instance announced unrouted (the
node-agent waits for it to stop Triton). Places nobody owns any more are cleaned here."""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.claims import HAPROXY, places_of
from tarn_shared.errors import UnavailableError
from tarn_shared.membership import Member
from tarn_shared.streams import StreamPublisher

from .discovery import Discovery
from .drain_counts import total_open_requests
from .gateways import HaproxyGateway, Resolver, ZookeeperGateway
from .ownership import Claims
from .pending import PendingWork
from .place_store import PlaceStore
from .plan import RoutingIntent
from .routing import Fleet, due_unrouted
from .sync_metrics import Clock, ErrorLog, Metrics

log = logging.getLogger(__name__)


class UnroutedAnnouncer:
    """Publishes instance-unrouted once per draining sequence of an instance, and again
    whenever the count of requests the gateways still hold for it changes."""

    def __init__(self, publisher: StreamPublisher, errors: ErrorLog, retry_soon: Callable[[], None]) -> None:
        self._publisher = publisher
        self._errors = errors
        self._retry_soon = retry_soon
        self._sent: Dict[str, Tuple[int, Optional[int]]] = {}  # instance id -> (draining seq, open requests)

    async def announce_due(self, record: ev.DeploymentRecord, fleet: Fleet, scope: Optional[Set[str]],
                           open_requests: Mapping[str, Optional[int]]) -> None:
        for member, count in due_unrouted(fleet, scope, self._sent, open_requests).values():
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
        first = self._sent.get(member.instance_id, (-1, None))[0] < member.seq
        self._sent[member.instance_id] = (member.seq, count)
        if first:
            log.info("instance unrouted", extra={"deployment": name, "container_id": member.instance_id,
                                                 "address": member.endpoints.address, "open_requests": count})


class DeploymentSync:
    def __init__(self, discovery: Discovery, haproxies: Sequence[HaproxyGateway], zookeeper: ZookeeperGateway,
                 resolver: Resolver, work: PendingWork, announcer: UnroutedAnnouncer, metrics: Metrics,
                 claims: Claims, places: PlaceStore, clock: Clock = Clock(),
                 grpc_backends: Optional[Mapping[str, str]] = None) -> None:
        self._discovery = discovery
        self._haproxies = list(haproxies)
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
            else:
                cleaned = await self._zookeeper.clean(place)
            if cleaned:
                self.claims.cleaned(place)
            ok = ok and cleaned
        return ok

    async def sync(self, name: str, scope: Optional[Set[str]]) -> bool:
        """Make every gateway match the fleet for ``scope`` (None: everything). True when all
        of them did; then due instance-unrouted events are announced."""
        record, fleet = self._discovery.records.get(name), self._discovery.fleets.get(name)
        if record is None or fleet is None:
            return True  # removed since the loop listed it: the reconcile cleans its places
        routable, draining, gone_addresses = fleet.routable(), fleet.draining(), fleet.gone()
        gone = {m.endpoints.address: m for m in fleet.view.members.values()
                if m.endpoints and m.endpoints.address in gone_addresses}
        targets = self._resolver.targets
        intent = RoutingIntent(desired=await targets(routable), draining=await targets(draining),
                               gone=await targets(gone), authoritative=fleet.authoritative)
        grpc_backend = self._grpc_backends.get(record.haproxy_backend)
        # The same instances at their gRPC ports, keyed by the same addresses (scope, drain counts).
        grpc_intent = RoutingIntent(
            desired=await targets(routable, grpc=True), draining=await targets(draining, grpc=True),
            gone=await targets(gone, grpc=True), authoritative=fleet.authoritative) if grpc_backend else None
        # Only what it owns as of the last refresh: a record new or moved since owns nothing
        # yet, and is not synced (False) until a refresh decides its places.
        backend, znodes = places_of(record, self.claims.default_ensemble)
        refused = self.claims.refused(name)
        ok = all(self.claims.owns(name, place) or place in refused for place in (backend, znodes))
        counted = []
        for haproxy in self._haproxies if self.claims.owns(name, backend) else ():
            ok = await haproxy.sync(record.haproxy_backend, intent, scope) and ok
            counted.append(haproxy.open_requests.get(record.haproxy_backend, {}))
            if grpc_backend and grpc_intent is not None:
                ok = await haproxy.sync(grpc_backend, grpc_intent, scope) and ok
                counted.append(haproxy.open_requests.get(grpc_backend, {}))
        if self.claims.owns(name, znodes):
            ok = await self._zookeeper.sync(record, fleet, routable, set(draining) | gone_addresses, scope) and ok
        self._metrics.routed.labels(name).set(len(routable))
        self._work.watch_draining(name, set(draining))
        if not ok:
            return False
        now = self._clock.wall()
        for address, since in self._work.settled(name, scope).items():
            change = "add" if address in routable else "remove"
            self._metrics.propagation.labels(change).observe(max(0.0, now - since))
        await self._announcer.announce_due(record, fleet, scope, total_open_requests(counted))
        return True
