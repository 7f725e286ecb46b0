"""What gateway-sync lets through from Redis: a deployment record only when its backend,
ZooKeeper ensemble and path have strict shapes (strict_names) and are allowed by this
replica's own settings; an instance only when its endpoint host and ports do. The
decisions are pure functions of an ``Allowlist``; ``Gate`` applies them, counts each
refusal in ``tarn_gateway_sync_refused_total{what,reason}`` and logs it, once per version
of what was refused (the same record is read again at every poll, a snapshot repeats)."""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import FrozenSet, Hashable, Optional, Sequence, Tuple

from tarn_shared import events as ev
from tarn_shared.claims import HAPROXY, Place, zookeeper_place

from .strict_names import backend_problem, host_problem, parse_ensemble, port_problem, zk_path_problem

log = logging.getLogger(__name__)
REMEMBERED_REFUSALS = 10_000  # versions already logged; bounded, whoever writes Redis


@dataclass(frozen=True)
class Refusal:
    reason: str  # a metric label: one of a few fixed words
    message: str


@dataclass(frozen=True)
class AllowedEnsemble:
    connection: str  # as configured: the only strings gateway-sync connects to
    hosts: str  # normalized as tarn_shared.claims compares them
    chroot: str


@dataclass(frozen=True)
class Allowlist:
    """``zk_paths``: prefixes within an ensemble's chroot; a path is allowed when it is one
    of them or lies under one."""

    backends: FrozenSet[str]
    ensembles: Tuple[AllowedEnsemble, ...]
    zk_paths: Tuple[str, ...]

    @classmethod
    def of(cls, backends: Sequence[str], ensembles: Sequence[str], zk_paths: Sequence[str]) -> "Allowlist":
        """From settings the caller has validated (settings.py checks every shape)."""
        allowed = []
        for connection in ensembles:
            name, problem = parse_ensemble(connection)
            if name is None:
                raise ValueError(problem)
            allowed.append(AllowedEnsemble(connection, name.hosts, name.chroot))
        # The longest chroot first: the most specific allowed ensemble holding a path wins.
        allowed.sort(key=lambda e: -len(e.chroot))
        return cls(frozenset(backends), tuple(allowed), tuple(p.rstrip("/") for p in zk_paths))

    def locate(self, place: Place) -> Optional[Tuple[str, str]]:
        """Where an allowed ZooKeeper place is: (the configured connection, the path within
        it); None when no allowed ensemble and path hold it."""
        for ensemble in self.ensembles:
            if ensemble.hosts != place.ensemble or not _within(place.name, ensemble.chroot):
                continue
            path = place.name[len(ensemble.chroot):] or "/"
            if any(_within(path, prefix) for prefix in self.zk_paths):
                return ensemble.connection, path
        return None


def record_refusal(record: ev.DeploymentRecord, allowed: Allowlist, default_ensemble: str) -> Optional[Refusal]:
    """Why this record may not be served, or None."""
    problem = backend_problem(record.haproxy_backend)
    if problem:
        return Refusal("backend", problem)
    if record.haproxy_backend not in allowed.backends:
        return Refusal("backend_not_allowed", f"backend {record.haproxy_backend} is not in "
                                              f"TARN_GATEWAY_SYNC_ALLOWED_BACKENDS")
    if record.zk_ensemble:  # None or "": gateway-sync's own
        _, problem = parse_ensemble(record.zk_ensemble)
        if problem:
            return Refusal("zk_ensemble", problem)
    problem = zk_path_problem(record.zk_path)
    if problem:
        return Refusal("zk_path", problem)
    place = zookeeper_place(record.zk_ensemble or default_ensemble, record.zk_path)
    if not any(e.hosts == place.ensemble for e in allowed.ensembles):
        return Refusal("zk_ensemble_not_allowed", f"ZooKeeper ensemble {record.zk_ensemble} is neither "
                                                  f"TARN_GATEWAY_SYNC_ZK_HOSTS nor in "
                                                  f"TARN_GATEWAY_SYNC_ALLOWED_ZK_ENSEMBLES")
    if allowed.locate(place) is None:
        return Refusal("zk_path_not_allowed", f"{place.describe()} is not under "
                                              f"TARN_GATEWAY_SYNC_ALLOWED_ZK_PATHS")
    return None


def place_refusal(place: Place, allowed: Allowlist) -> Optional[Refusal]:
    """Why a place read back from Redis (place_store) may not be touched, or None."""
    if place.kind == HAPROXY:
        if backend_problem(place.name) or place.name not in allowed.backends:
            return Refusal("backend_not_allowed", f"backend {place.name!r} is not allowed")
        return None
    if zk_path_problem(place.name) or allowed.locate(place) is None:
        return Refusal("zk_path_not_allowed", f"{place.describe()!r} is not allowed")
    return None


@lru_cache(maxsize=65_536)  # a snapshot repeats every member: judge each endpoint once
def endpoints_refusal(endpoints: Optional[ev.Endpoints]) -> Optional[Refusal]:
    if endpoints is None:
        return None
    ports = [endpoints.http_port] + [p for p in (endpoints.grpc_port, endpoints.metrics_port, endpoints.agent_port)
                                     if p is not None]
    problem = host_problem(endpoints.host) or next(filter(None, map(port_problem, ports)), None)
    return Refusal("host", problem) if problem else None


def admitted_lifecycle(event: ev.Event) -> Tuple[Optional[ev.Event], Tuple[Tuple[str, int, Refusal], ...]]:
    """The event with what may not be routed taken out (an instance event whole, a
    snapshot's or a delta's bad members), and what was: (instance id, seq, why)."""
    if isinstance(event, ev.InstanceEvent):
        refusal = endpoints_refusal(event.endpoints)
        return (None, ((event.instance_id, event.seq, refusal),)) if refusal else (event, ())
    if isinstance(event, (ev.MembershipSnapshot, ev.MembershipDelta)):
        refused = tuple((m.instance_id, m.seq, r) for m in event.members if (r := endpoints_refusal(m.endpoints)))
        if not refused:
            return event, ()
        bad = {(i, s) for i, s, _ in refused}
        members = [m for m in event.members if (m.instance_id, m.seq) not in bad]
        return event.model_copy(update={"members": members}), refused
    return event, ()


def _within(path: str, prefix: str) -> bool:
    return prefix in ("", "/") or path == prefix or path.startswith(prefix + "/")


class Gate:
    """Applies the decisions to the deployments this replica serves (``only``; empty:
    every one); ``refused`` is the Counter labelled (what, reason)."""

    def __init__(self, allowed: Allowlist, default_ensemble: str, refused, only: Sequence[str] = ()) -> None:
        self.allowed = allowed
        self.only = tuple(only)
        self._default_ensemble = default_ensemble
        self._refused = refused
        self._seen: "OrderedDict[Hashable, None]" = OrderedDict()

    def refuses_record(self, record: ev.DeploymentRecord) -> bool:
        """True for a record of a served deployment that may not be served."""
        if self.only and record.deployment not in self.only:
            return False  # not served at all: nothing to refuse
        refusal = record_refusal(record, self.allowed, self._default_ensemble)
        if refusal is not None:
            version = json.dumps(record.model_dump(mode="json", exclude={"event_id"}), sort_keys=True)
            self._count("record", ("record", record.deployment, version), refusal,
                        f"deployment record of {record.deployment!r} refused; nothing is written for it "
                        f"(a version served before stays served)", deployment=record.deployment,
                        app_id=record.app_id)
        return refusal is not None

    def admitted_event(self, deployment: str, event: ev.Event) -> Optional[ev.Event]:
        admitted, refused = admitted_lifecycle(event)
        for instance_id, seq, refusal in refused:
            self._count("instance", ("instance", deployment, instance_id, seq), refusal,
                        f"instance {instance_id!r} of {deployment!r} refused; it is not routed",
                        deployment=deployment, container_id=instance_id)
        return admitted

    def admits_place(self, place: Place) -> bool:
        refusal = place_refusal(place, self.allowed)
        if refusal is not None:
            self._count("place", ("place", place), refusal, "a stored place is not touched", place=place.name)
        return refusal is None

    def _count(self, what: str, version: Hashable, refusal: Refusal, message: str, **fields) -> None:
        if version in self._seen:
            return
        self._seen[version] = None
        if len(self._seen) > REMEMBERED_REFUSALS:
            self._seen.popitem(last=False)
        self._refused.labels(what, refusal.reason).inc()
        log.warning(f"{message}: {refusal.message}", extra={"reason": refusal.reason, **fields})
