"""What one HAProxy, then all of them, still hold for each leaving instance, pure: the
count gateway-sync sends on the unrouted event so the node-agent waits for 0."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .plan import Admin, ServerState, Target


def open_requests(leaving: Mapping[str, Target], observed: Sequence[ServerState]) -> Dict[str, Optional[int]]:
    """The requests one HAProxy still holds for each leaving address: the sessions of its
    servers in drain, 0 when it has none. None while a server there is still ready (its
    sessions were not read and new ones may come) or in maintenance (removed this round)."""
    counts: Dict[str, Optional[int]] = {}
    at: Dict[Tuple[str, int], List[ServerState]] = {}
    for server in observed:
        at.setdefault(server.endpoint, []).append(server)
    for address, target in leaving.items():
        servers = at.get(target.endpoint, [])
        counts[address] = None if any(s.admin is not Admin.DRAIN for s in servers) \
            else sum(s.sessions for s in servers)
    return counts


def total_open_requests(per_haproxy: Sequence[Mapping[str, Optional[int]]]) -> Dict[str, Optional[int]]:
    """Summed over every HAProxy; unknown where any of them does not know."""
    totals: Dict[str, Optional[int]] = {}
    for address in {a for counts in per_haproxy for a in counts}:
        counts = [c.get(address) for c in per_haproxy]
        totals[address] = None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
    return totals
