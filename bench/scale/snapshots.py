"""Membership bytes on the lifecycle stream per change, at 100, 1,000 and 10,000 instances.

tarn-am's own announcer (tarn_am.announcements.Announcer) builds what it publishes about a
fleet of ready instances shaped as a node-agent announces them (host, HTTP/gRPC/metrics/agent
ports, two models). The figure is the encoded entry (tarn_shared.events.encode, what XADD
sends, RESP framing aside) in bytes:

- before (the baseline, built in the same run): a full MembershipSnapshot on every change, as
  tarn-am published until deltas;
- after: the MembershipDelta for the same change;
- per second at bench_scale's churn (--churn-per-s of the fleet replaced each second: a
  drain, a stop and a ready each), one update per 1-s control-loop round: before, a full
  snapshot each round; after, the round's delta plus a full snapshot's share
  (its size / FULL_SNAPSHOT_INTERVAL_S).

Targets: a single change costs at 10,000 instances at most 2x what it costs at 100 (cost per
change, not per fleet), and at 10,000 the bytes per second at that churn are at most 0.1x the
baseline's. Exits 1 when one is missed.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Dict, List, Tuple

from tarn_shared import events as ev
from tarn_shared.membership import Member

from tarn_am.announcements import Announcer

APP = "application_1700000000000_0001"
SIZES = (100, 1_000, 10_000)


def instance(n: int, seq: int = 1, state: ev.InstanceState = ev.InstanceState.READY) -> Member:
    return Member(instance_id=f"container_e01_1700000000000_0001_01_{n:06d}", state=state, seq=seq,
                  endpoints=ev.Endpoints(host=f"gpu-node-{n:05d}.cluster.example.com", http_port=8000,
                                         grpc_port=8001, metrics_port=8002, agent_port=18000 + n % 1000),
                  models=("identity", "resnet50_onnx"), app_id=APP)


def encoded_bytes(event: ev.Event) -> int:
    return len(ev.encode(event)[ev.ENTRY_FIELD].encode())


def started(size: int) -> Tuple[Dict[str, Member], Announcer, int]:
    """A fleet of ``size`` ready instances and the announcer that has published its full snapshot."""
    members = {m.instance_id: m for m in (instance(n) for n in range(size))}
    full, announcer = Announcer("scale", APP).update(members, set(members), "1-0", size, now=0.0)
    return members, announcer.sent(full, version=1, now=0.0), encoded_bytes(full)


def one_change(size: int) -> Tuple[int, int, float]:
    """(before, after, seconds to build the delta) for one instance starting to drain."""
    members, announcer, _ = started(size)
    first = next(iter(members.values()))
    members[first.instance_id] = replace(first, state=ev.InstanceState.DRAINING, seq=2)
    began = time.perf_counter()
    delta, _ = announcer.update(members, set(members), "2-0", size, now=1.0)
    built_s = time.perf_counter() - began
    assert isinstance(delta, ev.MembershipDelta) and len(delta.members) == 1
    before, _ = announcer.update(members, set(members), "2-0", size, now=1.0, full=True)
    return encoded_bytes(before), encoded_bytes(delta), built_s


def churn_round(size: int, churn_per_s: float) -> Tuple[float, float, int]:
    """(before, after) bytes per second, and the changes in one round, at ``churn_per_s``."""
    members, announcer, full_bytes = started(size)
    replaced = max(1, round(size * churn_per_s))
    ids: List[str] = list(members)
    for n, instance_id in enumerate(ids[:replaced]):  # last round's drains stop, new ones start draining
        members[instance_id] = replace(members[instance_id], state=ev.InstanceState.STOPPED, seq=3)
        fresh = instance(size + n)
        members[fresh.instance_id] = fresh
    for instance_id in ids[replaced:2 * replaced]:
        members[instance_id] = replace(members[instance_id], state=ev.InstanceState.DRAINING, seq=2)
    delta, _ = announcer.update(members, set(members), "2-0", size, now=1.0)
    assert isinstance(delta, ev.MembershipDelta)
    before, _ = announcer.update(members, set(members), "2-0", size, now=1.0, full=True)
    after_per_s = encoded_bytes(delta) + full_bytes / announcer.full_every_s
    return float(encoded_bytes(before)), after_per_s, len(delta.members) + len(delta.removed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--churn-per-s", type=float, default=0.01, help="fraction of the fleet replaced per second")
    args = parser.parse_args(argv)
    print(f"membership bytes on the lifecycle stream (full snapshot every {ev.FULL_SNAPSHOT_INTERVAL_S:g} s, "
          f"churn {args.churn_per_s:g} of the fleet per second)")
    print(f"{'instances':>9} | {'1 change: before':>16} {'after':>7} {'ratio':>8} {'delta built':>11} | "
          f"{'per s: before':>13} {'after':>9} {'ratio':>6} {'changes/round':>13}")
    per_change: Dict[int, int] = {}
    per_s_ratio: Dict[int, float] = {}
    for size in SIZES:
        before, after, built_s = one_change(size)
        before_s, after_s, changes = churn_round(size, args.churn_per_s)
        per_change[size], per_s_ratio[size] = after, after_s / before_s
        print(f"{size:>9,} | {before:>16,} {after:>7,} {after / before:>7.4f}x {built_s * 1000:>9.2f}ms | "
              f"{before_s:>13,.0f} {after_s:>9,.0f} {after_s / before_s:>5.3f}x {changes:>13,}")
    growth = per_change[SIZES[-1]] / per_change[SIZES[0]]
    checks = [
        (f"one change at {SIZES[-1]:,} costs {growth:.2f}x what it costs at {SIZES[0]:,} (target <= 2x)",
         growth <= 2.0),
        (f"bytes per second at {SIZES[-1]:,} are {per_s_ratio[SIZES[-1]]:.3f}x the full-snapshot baseline "
         f"(target <= 0.1x)", per_s_ratio[SIZES[-1]] <= 0.1),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'} {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
