#!/usr/bin/env python3
"""The authz evaluator alone, in process: decisions per second, uncached and cached, against
1,000 generated Ranger policies for the `triton` service and a fixed request mix.
Targets (DESIGN.md): >= 20,000/s uncached, >= 200,000/s cached."""
from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

from tarn_authz.ranger import AccessRequest, DecisionCache, PolicyEngine, ServicePolicies

REPO = Path(__file__).resolve().parents[2]
SERVICEDEF = json.loads((REPO / "deploy" / "ranger" / "triton-servicedef.json").read_text())
NOW_MS = int(datetime(2026, 6, 1, tzinfo=timezone.utc).timestamp() * 1000)
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


def rate(evaluate, requests: list[AccessRequest], min_seconds: float) -> tuple[float, float]:
    """Decisions per wall-clock second and per CPU second of this process (the latter is
    steadier on a shared machine)."""
    done = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    while True:
        for req in requests:
            evaluate(req, NOW_MS)
        done += len(requests)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed, done / max(time.process_time() - start_cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rng = random.Random(20260601)
    policies = generate_policies(args.policies, rng)
    requests = request_mix(args.requests, rng, args.policies)
    build_start = time.perf_counter()
    engine = PolicyEngine(ServicePolicies.model_validate(
        {"serviceName": "triton", "policyVersion": 1, "serviceDef": SERVICEDEF, "policies": policies}))
    build_s = time.perf_counter() - build_start
    allowed = sum(engine.evaluate_at(r, NOW_MS).allowed for r in requests)
    uncached = rate(engine.evaluate_at, requests, args.seconds)
    cache = DecisionCache(engine)
    for req in requests:
        cache.evaluate_at(req, NOW_MS)
    cached = rate(cache.evaluate_at, requests, args.seconds)
    print(f"policies={engine.policy_count} requests={len(requests)} allowed={allowed} build_s={build_s:.3f}")
    for label, (wall, cpu), target in (("uncached", uncached, 20_000), ("cached", cached, 200_000)):
        print(f"{label}_decisions_per_s={wall:,.0f} per_cpu_s={cpu:,.0f} (target {target:,}: {wall / target:.2f}x)")


if __name__ == "__main__":
    main()
