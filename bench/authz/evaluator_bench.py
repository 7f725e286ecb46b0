#!/usr/bin/env python3
"""The authz evaluator alone, in process: decisions per second against generated Ranger policies for
the `triton` service and a fixed request mix, at 1,000 and at 10,000 policies. Each figure is shown
against its target and against the previous evaluator (Ranger's loop over the flat CandidateIndex,
no grant index) measured in the same run; exits 1 when a target is missed.
Targets (DESIGN.md, issue 18): 1,000 policies: >= 20,000/s uncached, >= 200,000/s cached;
10,000 policies: >= 40,000/s uncached, >= 20,000/s for "list any model".
Rates are per CPU second of this process (on a shared machine the wall-clock rate counts the time
other processes hold the core); the wall-clock rate is printed beside each."""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tarn_authz.ranger import AccessRequest, DecisionCache, PolicyEngine, ServicePolicies

REPO = Path(__file__).resolve().parents[2]
SERVICEDEF = json.loads((REPO / "deploy" / "ranger" / "triton-servicedef.json").read_text())
NOW_MS = int(datetime(2026, 6, 1, tzinfo=timezone.utc).timestamp() * 1000)
TARGETS = {1000: {"uncached": 20_000, "cached": 200_000}, 10_000: {"uncached": 40_000, "list_any": 20_000}}
USERS = [f"user{i}" for i in range(200)]
GROUPS = [f"group{i}" for i in range(40)]
ACCESSES = ["infer", "metadata", "list"]


def generate_policies(count: int, rng: random.Random) -> list[dict]:
    policies = []
    for pid in range(1, count + 1):
        kind = rng.random()
        if kind < 0.70:
            values = [f"model-{pid}"]
        elif kind < 0.85:
            values = [f"team{pid % 50}-*"]
        elif kind < 0.90:
            values = [f"m?del-{pid % 10}*"]
        elif kind < 0.93:
            values = [f"secret-{pid}-*"]
        else:
            values = [f"shared-{pid % 20}"]
        items = [{"users": rng.sample(USERS, 3), "groups": rng.sample(GROUPS, 2),
                  "accesses": [{"type": a, "isAllowed": True} for a in rng.sample(ACCESSES, rng.randint(1, 3))]}]
        policy = {"id": pid, "name": f"p{pid}", "isEnabled": True, "isAuditEnabled": rng.random() < 0.8,
                  "resources": {"model": {"values": values, "isExcludes": 0.90 <= kind < 0.93 and rng.random() < 0.3}},
                  "policyItems": items, "policyPriority": 1 if rng.random() < 0.02 else 0}
        if rng.random() < 0.05:
            policy["denyPolicyItems"] = [{"users": rng.sample(USERS, 2), "accesses": [{"type": "infer"}]}]
        if rng.random() < 0.05:
            policy["allowExceptions"] = [{"users": rng.sample(USERS, 2), "accesses": [{"type": "infer"}]}]
        policies.append(policy)
    return policies


def pick_model(rng: random.Random, policy_count: int) -> tuple[float, str]:
    """The fixed mix: 60% named by a policy, 20% matched by wildcards, 10% unknown, 10% shared.
    The roll is returned too: above 0.97 the caller asks a "list any model" question."""
    roll = rng.random()
    if roll < 0.6:
        return roll, f"model-{rng.randint(1, policy_count)}"
    if roll < 0.8:
        return roll, f"team{rng.randint(0, 49)}-llm{rng.randint(0, 9)}"
    if roll < 0.9:
        return roll, f"unknown-{rng.randint(0, 999)}"
    return roll, f"shared-{rng.randint(0, 19)}"


def request_mix(count: int, rng: random.Random, policy_count: int) -> list[AccessRequest]:
    requests = []
    for _ in range(count):
        roll, model = pick_model(rng, policy_count)
        scopes = {}
        access = rng.choice(ACCESSES)
        if roll > 0.97:
            model, access, scopes = "", "list", {"model": "SELF_OR_PREFIX"}
        requests.append(AccessRequest(resource={"model": model}, access_type=access, user=rng.choice(USERS),
                                      user_groups=frozenset(rng.sample(GROUPS, 2)),
                                      resource_element_matching_scopes=scopes))
    return requests


def list_any_mix(count: int, rng: random.Random) -> list[AccessRequest]:
    """"May this user list any model": no model named, the prefix scope, access `list`."""
    return [AccessRequest(resource={"model": ""}, access_type="list", user=rng.choice(USERS),
                          user_groups=frozenset(rng.sample(GROUPS, 2)),
                          resource_element_matching_scopes={"model": "SELF_OR_PREFIX"}) for _ in range(count)]


def rate(evaluate, requests: list[AccessRequest], min_seconds: float) -> tuple[float, float]:
    """Decisions per CPU second of this process, and per wall-clock second."""
    done = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    while True:
        for req in requests:
            evaluate(req, NOW_MS)
        done += len(requests)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / max(time.process_time() - start_cpu, 1e-9), done / elapsed


class Previous(PolicyEngine):
    indexed = False  # every request through Ranger's loop over CandidateIndex's candidates


def measure(count: int, requests: int, seconds: float) -> list[tuple[str, float, float, float, float]]:
    """(label, per CPU s, wall, target, previous evaluator per CPU s) for each figure at `count` policies."""
    rng = random.Random(20260601)
    payload = ServicePolicies.model_validate({"serviceName": "triton", "policyVersion": 1, "serviceDef": SERVICEDEF,
                                              "policies": generate_policies(count, rng)})
    mix = request_mix(requests, rng, count)
    listing = list_any_mix(requests // 5, rng)
    build_start = time.process_time()
    engine = PolicyEngine(payload)
    build_s = time.process_time() - build_start
    previous = Previous(payload)
    for req in mix + listing:  # the two paths must agree before their speed means anything
        assert engine.evaluate_at(req, NOW_MS) == previous.evaluate_at(req, NOW_MS), req
    allowed = sum(engine.evaluate_at(r, NOW_MS).allowed for r in mix)
    print(f"policies={count:,} requests={len(mix)} allowed={allowed} list_any_allowed="
          f"{sum(engine.evaluate_at(r, NOW_MS).allowed for r in listing)}/{len(listing)} build_cpu_s={build_s:.2f}")
    rows = []
    for label, reqs in (("uncached", mix), ("list_any", listing)):
        cpu, wall = rate(engine.evaluate_at, reqs, seconds)
        before, _ = rate(previous.evaluate_at, reqs, seconds)
        rows.append((label, cpu, wall, TARGETS[count].get(label, 0), before))
    cache = DecisionCache(engine)
    for req in mix:
        cache.evaluate_at(req, NOW_MS)
    cpu, wall = rate(cache.evaluate_at, mix, seconds)
    previous_cache = DecisionCache(previous)
    for req in mix:
        previous_cache.evaluate_at(req, NOW_MS)
    before, _ = rate(previous_cache.evaluate_at, mix, seconds)
    rows.append(("cached", cpu, wall, TARGETS[count].get("cached", 0), before))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="policy counts, comma-separated")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    missed = []
    for count in (int(c) for c in args.sizes.split(",")):
        for label, cpu, wall, target, before in measure(count, args.requests, args.seconds):
            verdict = f"target {target:,}: {cpu / target:.2f}x" if target else "no target"
            print(f"  {label}_decisions_per_cpu_s={cpu:,.0f} (wall {wall:,.0f}/s; {verdict}; "
                  f"previous evaluator {before:,.0f}/s: {cpu / before:.2f}x)")
            if target and cpu < target:
                missed.append(f"{label} at {count:,} policies: {cpu:,.0f}/s < {target:,}/s ({cpu / target:.2f}x)")
    for miss in missed:
        print(f"MISSED {miss}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
