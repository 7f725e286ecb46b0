"""The difference between desired and observed gateways, as pure functions returning
what to do (the way Ray Serve's haproxy.py diffs servers). Both HAProxy layouts (dynamic
servers and the seeds' placeholder slots) and ZooKeeper are planned here; adapters only
execute the returned actions."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

EMPTY_SLOT_IP = "0.0.0.0"


class Admin(str, Enum):
    READY = "ready"
    DRAIN = "drain"
    MAINT = "maint"


class Layout(str, Enum):
    DYNAMIC = "dynamic"
    SLOTS = "slots"


class _AtEndpoint:
    """Servers and the targets meant for them are matched by ``(ip, port)``."""

    ip: str
    port: int

    @property
    def endpoint(self) -> Tuple[str, int]:
        return (self.ip, self.port)


@dataclass(frozen=True)
class Target(_AtEndpoint):
    """A desired server: ``address`` is the instance's ``host:port``, ``ip`` its resolution."""

    address: str
    ip: str
    port: int


@dataclass(frozen=True)
class ServerState(_AtEndpoint):
    """One line of ``show servers state``; ``sessions``: its open requests from ``show stat``
    (``scur`` + ``qcur``), read only while some server of the backend is in drain; ``srv_id``:
    HAProxy's id for it, where a read told it (``show stat`` reads one server by its id)."""

    name: str
    ip: str
    port: int
    admin: Admin
    operational_up: bool
    sessions: int = 0
    srv_id: Optional[int] = None


@dataclass(frozen=True)
class ServerAction:
    """A Runtime API change to the server ``name``; the class says which change."""

    name: str


@dataclass(frozen=True)
class PlaceServer(ServerAction):
    ip: str
    port: int


@dataclass(frozen=True)
class AddServer(PlaceServer):
    """A new dynamic server; ``srv_id``: the HAProxy id it is to take (applied.AppliedBackend
    chooses it, so that reading its stats later needs no read of the whole backend)."""

    srv_id: Optional[int] = None


class FillSlot(PlaceServer):
    """A free placeholder slot pointed at an instance."""


class ReadyServer(ServerAction):
    """Back in rotation."""


class DrainServer(ServerAction):
    """No new sessions; current ones finish."""


class RemoveServer(ServerAction):
    """Out now: the dynamic server is deleted."""


class ClearSlot(ServerAction):
    """Out now: the slot is emptied for the next instance."""


@dataclass(frozen=True)
class SlotsExhausted:
    addresses: Tuple[str, ...]


HaproxyAction = Union[AddServer, FillSlot, ReadyServer, DrainServer, RemoveServer, ClearSlot, SlotsExhausted]


@dataclass(frozen=True)
class DrainClock:
    """When each server was put in drain, so a drain that never empties is bounded."""

    since: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingIntent:
    """What one deployment wants of a gateway, by address (``host:port``)."""

    desired: Mapping[str, Target]
    draining: Mapping[str, Target]  # take out gently: drain, remove once empty
    gone: Mapping[str, Target]  # take out now: stopped or unready
    authoritative: bool  # may remove addresses it knows nothing about


def server_name(prefix: str, address: str) -> str:
    """A dynamic server's name, derived from the instance address (HAProxy allows
    letters, digits, '-', '_', '.', ':')."""
    return prefix + re.sub(r"[^A-Za-z0-9_.:-]", "_", address)


def slot_number(name: str, slot_prefix: str) -> Optional[int]:
    if name.startswith(slot_prefix) and name[len(slot_prefix):].isdigit():
        return int(name[len(slot_prefix):])
    return None


def detect_layout(observed: Sequence[ServerState], slot_prefix: str) -> Layout:
    """A backend holding servers named ``<slot_prefix>N`` uses the seeds' slots."""
    return Layout.SLOTS if any(slot_number(s.name, slot_prefix) is not None for s in observed) else Layout.DYNAMIC


def plan_haproxy(
    layout: Layout,
    intent: RoutingIntent,
    observed: Sequence[ServerState],
    *,
    now: float,
    clock: DrainClock,
    drain_timeout_s: float,
    server_prefix: str = "tarn-",
    slot_prefix: str = "triton-",
    scope: Optional[Set[str]] = None,
) -> Tuple[List[HaproxyAction], DrainClock]:
    """What to do to one backend so it serves ``intent.desired``. With ``scope``, only
    those addresses are acted on (an event's immediate sync); the whole backend is still
    read, so free slots and duplicates are known."""
    if layout is Layout.SLOTS:
        managed = sorted((s for s in observed if slot_number(s.name, slot_prefix) is not None),
                         key=lambda s: slot_number(s.name, slot_prefix) or 0)
    else:
        managed = [s for s in observed if s.name.startswith(server_prefix)]

    def in_scope(address: str) -> bool:
        return scope is None or address in scope

    desired_by_endpoint = {t.endpoint: t for t in intent.desired.values()}
    draining_by_endpoint = {t.endpoint: t for t in intent.draining.values() if t.endpoint not in desired_by_endpoint}
    gone_by_endpoint = {t.endpoint: t for t in intent.gone.values()
                        if t.endpoint not in desired_by_endpoint and t.endpoint not in draining_by_endpoint}
    actions: List[HaproxyAction] = []
    since: Dict[str, float] = {}
    placed: Set[Tuple[str, int]] = set()
    free_slots: List[str] = []
    remove = ClearSlot if layout is Layout.SLOTS else RemoveServer

    for server in managed:
        target = desired_by_endpoint.get(server.endpoint)
        if target is not None:
            if server.endpoint in placed:  # a duplicate of a server already kept
                if in_scope(target.address):
                    actions.append(remove(server.name))
                    free_slots.append(server.name)
                continue
            placed.add(server.endpoint)
            if server.admin is not Admin.READY and in_scope(target.address):
                actions.append(ReadyServer(server.name))
            continue
        if layout is Layout.SLOTS and server.ip == EMPTY_SLOT_IP:
            if server.admin is not Admin.MAINT and intent.authoritative and scope is None:
                actions.append(ClearSlot(server.name))
            free_slots.append(server.name)
            continue
        leaving = draining_by_endpoint.get(server.endpoint)
        if leaving is not None:
            address = leaving.address
            if not in_scope(address):
                if server.admin is Admin.DRAIN:
                    since[server.name] = clock.since.get(server.name, now)
                continue
            if server.admin is Admin.READY:
                actions.append(DrainServer(server.name))
                since[server.name] = now
            elif server.admin is Admin.DRAIN:
                started = clock.since.get(server.name, now)
                if server.sessions == 0 or now - started >= drain_timeout_s:
                    actions.append(remove(server.name))
                    free_slots.append(server.name)
                else:
                    since[server.name] = started
            else:
                actions.append(remove(server.name))
                free_slots.append(server.name)
            continue
        gone = gone_by_endpoint.get(server.endpoint)
        if (gone is not None and in_scope(gone.address)) or (gone is None and intent.authoritative and scope is None):
            actions.append(remove(server.name))
            free_slots.append(server.name)

    missing = [t for t in intent.desired.values() if t.endpoint not in placed and in_scope(t.address)]
    missing.sort(key=lambda t: t.address)
    if layout is Layout.DYNAMIC:
        actions.extend(AddServer(server_name(server_prefix, t.address), t.ip, t.port) for t in missing)
    else:
        for target, slot in zip(missing, free_slots):
            actions.append(FillSlot(slot, target.ip, target.port))
        if len(missing) > len(free_slots):
            actions.append(SlotsExhausted(tuple(t.address for t in missing[len(free_slots):])))
    return actions, DrainClock(since)


# ---------------------------------------------------------------- ZooKeeper

@dataclass(frozen=True)
class ObservedZnode:
    name: str
    data: bytes
    ephemeral_owner: int


@dataclass(frozen=True)
class ZnodeAction:
    """A change to the znode ``name``; the class says which change."""

    name: str


@dataclass(frozen=True)
class WriteZnode(ZnodeAction):
    data: bytes


class CreateZnode(WriteZnode):
    """A new ephemeral node."""


class ReplaceZnode(WriteZnode):
    """Delete and create: the data changed, or the node belongs to another session."""


class DeleteZnode(ZnodeAction):
    """The instance is no longer routable."""


def plan_znodes(
    desired: Mapping[str, bytes],
    leaving: Iterable[str],
    observed: Mapping[str, ObservedZnode],
    *,
    session_id: int,
    authoritative: bool,
    scope: Optional[Set[str]] = None,
) -> List[ZnodeAction]:
    """Znode name is the instance's ``host:port``; one node per routable instance, owned
    by the writer's current session so it vanishes if the writer dies."""
    leaving = set(leaving)
    actions: List[ZnodeAction] = []
    for name in sorted(desired):
        if scope is not None and name not in scope:
            continue
        node = observed.get(name)
        if node is None:
            actions.append(CreateZnode(name, desired[name]))
        elif node.ephemeral_owner != session_id or node.data != desired[name]:
            actions.append(ReplaceZnode(name, desired[name]))
    for name in sorted(observed):
        if name in desired or (scope is not None and name not in scope):
            continue
        if name in leaving or (authoritative and scope is None):
            actions.append(DeleteZnode(name))
    return actions
