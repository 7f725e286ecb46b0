"""What gateway-sync last applied to each gateway, so an event's sync plans from memory
and reads nothing: the servers of an HAProxy backend and the znodes under a path, as last
read by a full reconcile and changed by every plan executed since. Pure: no I/O.

Drift made behind gateway-sync's back (a server deleted by hand through the Runtime API, a
znode removed) is not seen here: the periodic full reconcile reads the gateway again and
repairs it. A failed execution drops the memory, so the next sync reads."""
from __future__ import annotations

import heapq
import zlib
from dataclasses import replace
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from .plan import (EMPTY_SLOT_IP, AddServer, Admin, ClearSlot, DeleteZnode, DrainServer, FillSlot,
                   HaproxyAction, Layout, ObservedZnode, ReadyServer, RemoveServer, ServerState, WriteZnode,
                   ZnodeAction, slot_number)

CLEARED_SLOT_PORT = 8000  # what haproxy.RuntimeApi sets a cleared slot to


class AppliedBackend:
    """One backend's servers, by name and by endpoint."""

    def __init__(self, layout: Layout, servers: Sequence[ServerState], slot_prefix: str) -> None:
        self.layout = layout
        self._slot_prefix = slot_prefix
        self.servers: Dict[str, ServerState] = {}
        self._at: Dict[Tuple[str, int], Dict[str, None]] = {}
        self._empty_slots: Dict[str, None] = {}
        for server in servers:
            self._put(server)
        # HAProxy ids for new servers: above every id read, and those of servers removed since.
        self._next_id = max((s.srv_id for s in servers if s.srv_id is not None), default=0) + 1
        self._freed_ids: List[int] = []

    def around(self, endpoints: Iterable[Tuple[str, int]], free_slots: int) -> List[ServerState]:
        """The servers at these endpoints, and (slots layout) up to ``free_slots`` empty slots:
        all a plan scoped to them looks at."""
        found = [self.servers[name] for endpoint in set(endpoints) for name in self._at.get(endpoint, ())]
        if self.layout is Layout.SLOTS and free_slots:
            empty = sorted(self._empty_slots, key=lambda n: slot_number(n, self._slot_prefix) or 0)
            found += [self.servers[name] for name in empty[:free_slots]]
        return found

    def with_sessions(self, sessions: Mapping[str, int]) -> None:
        for name, count in sessions.items():
            server = self.servers.get(name)
            if server is not None and server.admin is Admin.DRAIN:
                self._put(replace(server, sessions=count))

    def with_ids(self, actions: Sequence[HaproxyAction]) -> List[HaproxyAction]:
        """The plan with an HAProxy id chosen for each new server (the lowest freed one, else the
        next above all known), so the memory knows every server's id and a drain's open
        requests are read one server each. Ids stay as few as the servers: freed ones are reused."""
        out: List[HaproxyAction] = []
        for action in actions:
            if isinstance(action, AddServer) and action.srv_id is None:
                if self._freed_ids:
                    srv_id = heapq.heappop(self._freed_ids)
                else:
                    srv_id, self._next_id = self._next_id, self._next_id + 1
                action = replace(action, srv_id=srv_id)
            out.append(action)
        return out

    def record(self, actions: Sequence[HaproxyAction]) -> Set[str]:
        """The servers after a plan was executed; the names it changed."""
        changed = set()
        for action in actions:
            name = getattr(action, "name", None)
            if name is None:
                continue
            old = self.servers.get(name)
            # A slot keeps its HAProxy id when filled or cleared; a new server has the one chosen for it.
            slot_id = old.srv_id if old is not None and not isinstance(action, AddServer) else None
            if isinstance(action, AddServer):
                self._put(ServerState(name, action.ip, action.port, Admin.READY, False, srv_id=action.srv_id))
            elif isinstance(action, FillSlot):
                self._put(ServerState(name, action.ip, action.port, Admin.READY, False, srv_id=slot_id))
            elif isinstance(action, RemoveServer):
                if old is not None and old.srv_id is not None:
                    heapq.heappush(self._freed_ids, old.srv_id)
                self._drop(name)
            elif isinstance(action, ClearSlot):
                self._put(ServerState(name, EMPTY_SLOT_IP, CLEARED_SLOT_PORT, Admin.MAINT, False, srv_id=slot_id))
            elif old is not None and isinstance(action, (ReadyServer, DrainServer)):
                admin = Admin.READY if isinstance(action, ReadyServer) else Admin.DRAIN
                self._put(replace(old, admin=admin, sessions=0))
            changed.add(name)
        return changed

    def _put(self, server: ServerState) -> None:
        self._drop(server.name)
        self.servers[server.name] = server
        self._at.setdefault(server.endpoint, {})[server.name] = None
        if server.ip == EMPTY_SLOT_IP and slot_number(server.name, self._slot_prefix) is not None:
            self._empty_slots[server.name] = None

    def _drop(self, name: str) -> None:
        old = self.servers.pop(name, None)
        if old is None:
            return
        at = self._at.get(old.endpoint, {})
        at.pop(name, None)
        if not at:
            self._at.pop(old.endpoint, None)
        self._empty_slots.pop(name, None)


def merged(fresh: Sequence[ServerState], touched: Set[str], applied: Optional[AppliedBackend]) -> List[ServerState]:
    """A reconcile's read of a backend, with the servers an apply changed while it was being
    read taken from memory instead (the apply is newer)."""
    if not touched or applied is None:
        return list(fresh)
    return [s for s in fresh if s.name not in touched] + \
        [applied.servers[n] for n in sorted(touched) if n in applied.servers]


class AppliedZnodes:
    """The znodes under one path as this session wrote them."""

    def __init__(self, session_id: int, nodes: Mapping[str, ObservedZnode]) -> None:
        self.session_id = session_id
        self.nodes: Dict[str, ObservedZnode] = dict(nodes)

    def around(self, names: Iterable[str]) -> Dict[str, ObservedZnode]:
        return {n: self.nodes[n] for n in names if n in self.nodes}

    def record(self, actions: Sequence[ZnodeAction]) -> Set[str]:
        for action in actions:
            if isinstance(action, WriteZnode):
                self.nodes[action.name] = ObservedZnode(action.name, action.data, self.session_id)
            elif isinstance(action, DeleteZnode):
                self.nodes.pop(action.name, None)
        return {a.name for a in actions}


def merged_znodes(fresh: Mapping[str, ObservedZnode], touched: Set[str],
                  applied: Optional[AppliedZnodes]) -> Dict[str, ObservedZnode]:
    """As ``merged``, for znodes."""
    if not touched or applied is None:
        return dict(fresh)
    nodes = {n: z for n, z in fresh.items() if n not in touched}
    nodes.update(applied.around(touched))
    return nodes



VERIFY_ROUNDS = 10  # a full reconcile reads the data of 1/10 of the znodes it wrote (each every 10th)


def to_verify(children: Sequence[str], written: Optional[AppliedZnodes], round_: int) -> List[str]:
    """The znodes a full reconcile reads: every child this session did not write, and a stable
    share of those it did, a different one each round, so each is read again within
    VERIFY_ROUNDS reconciles (at 10,000 instances, reading every znode was most of its cost).
    A znode missing or added behind gateway-sync's back shows in ``children`` at once."""
    known = written.nodes if written is not None else {}
    return [n for n in children
            if n not in known or zlib.crc32(n.encode()) % VERIFY_ROUNDS == round_ % VERIFY_ROUNDS]


def observed_spread(children: Sequence[str], read: Mapping[str, ObservedZnode], asked: Sequence[str],
                    written: Optional[AppliedZnodes]) -> Dict[str, ObservedZnode]:
    """The children as a full read would see them: those read, else as this session wrote them
    (a child asked for but not found was deleted meanwhile)."""
    skipped = set(children) - set(asked)
    nodes = {n: written.nodes[n] for n in skipped if written is not None and n in written.nodes}
    nodes.update(read)
    return nodes
