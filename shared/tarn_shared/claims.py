"""The places a deployment owns: its HAProxy backend, and its ZooKeeper path on its
ensemble. Two deployments may not share one (each would delete the other's servers and
znodes at every full reconcile). `tarn submit` refuses a deployment that claims a live
one's place; gateway-sync serves a place only for its owner. Pure: no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Tuple

from .events import DeploymentRecord

HAPROXY = "haproxy"
ZOOKEEPER = "zookeeper"
DEFAULT_ENSEMBLE = ""  # the record names none: gateway-sync's own ensemble


@dataclass(frozen=True, order=True)
class Place:
    """``name`` is the backend, or the znode parent path with the chroot folded in."""

    kind: str
    ensemble: str
    name: str

    def describe(self) -> str:
        if self.kind == HAPROXY:
            return f"HAProxy backend {self.name}"
        where = self.ensemble or "the default ensemble"
        return f"ZooKeeper path {self.name} on {where}"


def haproxy_place(backend: str) -> Place:
    return Place(HAPROXY, "", backend)


def zookeeper_place(ensemble: Optional[str], path: str) -> Place:
    """``host:port,...[/chroot]`` and a path; hosts are compared in any order and case."""
    hosts, _, chroot = (ensemble or "").strip().partition("/")
    normalized = ",".join(sorted(h.strip().lower() for h in hosts.split(",") if h.strip()))
    full = "/".join(part for part in (chroot + "/" + path).split("/") if part)
    return Place(ZOOKEEPER, normalized or DEFAULT_ENSEMBLE, "/" + full)


def places_of(record: DeploymentRecord, default_ensemble: Optional[str] = None) -> Tuple[Place, Place]:
    """The record's backend and ZooKeeper place; ``default_ensemble`` stands for a record
    naming no ensemble (gateway-sync knows it; `tarn submit` does not, and compares as is)."""
    return (haproxy_place(record.haproxy_backend),
            zookeeper_place(record.zk_ensemble or default_ensemble, record.zk_path))


def overlaps(a: Place, b: Place) -> bool:
    """The same backend, or ZooKeeper paths on one ensemble where one is the other or
    inside it (a full reconcile of the outer one would try to delete the inner one)."""
    if a.kind != b.kind or a.ensemble != b.ensemble:
        return False
    if a.kind == HAPROXY or a.name == b.name:
        return a.name == b.name
    outer, inner = sorted((a.name.rstrip("/"), b.name.rstrip("/")), key=len)
    return outer == "" or inner.startswith(outer + "/")


def claim_order(record: DeploymentRecord) -> Tuple[float, str]:
    """Who claimed first: the record's ``ts`` is set once when its AM starts (the AM
    republishes the same record), ties broken by name."""
    return (record.ts, record.deployment)


def first_clash(places: Iterable[Place], others: Iterable[DeploymentRecord],
                default_ensemble: Optional[str] = None) -> Optional[Tuple[Place, DeploymentRecord]]:
    """The first of ``places`` that one of ``others`` (earliest claim first) also claims."""
    ordered = sorted(others, key=claim_order)
    for place in places:
        for other in ordered:
            if any(overlaps(place, theirs) for theirs in places_of(other, default_ensemble)):
                return place, other
    return None


def live_records(records: Mapping[str, DeploymentRecord]) -> Mapping[str, DeploymentRecord]:
    return {name: r for name, r in records.items() if not r.removed}
