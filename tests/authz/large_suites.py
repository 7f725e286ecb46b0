"""Differential suites of 1,000 to 1,500 policies, in the same format as test_differential's
Hypothesis suites: at this size the grant index, not the scan, picks each request's candidates.
Drawn with a seeded `random.Random` (Hypothesis cannot draw inputs this large): numbered models
and patterns sharing heads ('resnet50-7', 'resnet50-3*', 'r?snet50-1*') beside the domain's own
patterns, many principals, and the rarer features (priority, deny, exceptions, deny-all-else,
excludes, disabled policies, audit off, roles, `_any`, list-any and descendant scopes) kept rare.
Validity schedules are left to the small suites."""
from __future__ import annotations

import copy
import random

USERS = ["alice", "bob", "carol", "dave"] + [f"user{i}" for i in range(40)]
GROUPS = ["eng", "ops", "sales"] + [f"team{i}" for i in range(12)]
ROLE_NAMES = ["ml", "admins", "viewers", "auditors"]


def large_suites(domains: list, count: int, seed: int, start_ms: int) -> list[dict]:
    """`count` suites, the i-th on domains[i % len(domains)]."""
    rng = random.Random(seed)
    return [_suite(domains[i % len(domains)], rng, start_ms) for i in range(count)]


def _suite(domain, rng: random.Random, start_ms: int) -> dict:
    definition = copy.deepcopy(domain.definition)
    ignore_case = rng.random() < 0.5
    for resource in definition["resources"]:
        resource["matcherOptions"]["ignoreCase"] = str(ignore_case).lower()
    roles = _roles(rng) if rng.random() < 0.5 else None
    role_names = ROLE_NAMES if roles else []
    policies = [_policy(domain, rng, pid, role_names) for pid in range(1, rng.randint(1000, 1500) + 1)]
    suite = {"policies": {"serviceName": "svc", "serviceId": 1, "policyVersion": 1, "serviceDef": definition,
                          "policies": policies},
             "requests": [_request(domain, rng, start_ms) for _ in range(48)]}
    if roles:
        suite["roles"] = roles
    return suite


def _value(domain, rng: random.Random, name: str) -> str:
    base = rng.choice(domain.names[name])
    roll = rng.random()
    if roll < 0.55:
        return f"{base}-{rng.randint(0, 299)}"
    if roll < 0.72:
        return f"{base}-{rng.randint(0, 29)}*"
    if roll < 0.80:
        return f"{base[0]}?{base[2:]}-{rng.randint(0, 9)}*"
    return rng.choice(domain.patterns[name])


def _items(rng: random.Random, domain, role_names: list[str], most: int) -> list[dict]:
    items = []
    for _ in range(rng.randint(0, most) if most else 0):
        items.append({
            "users": rng.sample(USERS + ["{USER}"] * 2, rng.randint(0, 3)),
            "groups": rng.sample(GROUPS + (["public"] if rng.random() < 0.05 else []), rng.randint(0, 2)),
            "roles": rng.sample(role_names, rng.randint(0, 1)) if role_names else [],
            "delegateAdmin": False,
            "accesses": [{"type": a, "isAllowed": rng.random() > 0.03}
                         for a in rng.sample(domain.accesses, rng.randint(1, 2))]})
    return items


def _policy(domain, rng: random.Random, pid: int, role_names: list[str]) -> dict:
    depth = 1 if len(domain.resources) == 1 else rng.randint(1, len(domain.resources))
    resources = {name: {"values": list(dict.fromkeys(_value(domain, rng, name) for _ in range(rng.randint(1, 2)))),
                        "isExcludes": rng.random() < 0.03, "isRecursive": False}
                 for name in domain.resources[:depth]}
    deny_heavy = rng.random() < 0.1
    return {
        "id": pid, "name": rng.choice("abmz") + str(pid), "service": domain.definition["name"], "policyType": 0,
        "policyPriority": 1 if rng.random() < 0.05 else 0, "isEnabled": rng.random() > 0.05,
        "isAuditEnabled": rng.random() > 0.25, "isDenyAllElse": rng.random() < 0.003, "resources": resources,
        "policyItems": _items(rng, domain, role_names, 2),
        "denyPolicyItems": _items(rng, domain, role_names, 2 if deny_heavy else 0),
        "allowExceptions": _items(rng, domain, role_names, 1 if rng.random() < 0.1 else 0),
        "denyExceptions": _items(rng, domain, role_names, 1 if deny_heavy else 0),
        "validitySchedules": [],
    }


def _request(domain, rng: random.Random, start_ms: int) -> dict:
    depth = rng.randint(1, len(domain.resources))
    resource = {}
    for name in domain.resources[:depth]:
        base = rng.choice(domain.names[name])
        roll = rng.random()
        resource[name] = (f"{base}-{rng.randint(0, 299)}" if roll < 0.5 else
                          f"{base}-{rng.randint(0, 29)}{rng.choice(['', 'x', '7'])}" if roll < 0.7 else base)
    raw = {"resource": resource, "accessType": "" if rng.random() < 0.1 else rng.choice(domain.accesses),
           "user": None if rng.random() < 0.03 else rng.choice(USERS[:4] * 4 + USERS),
           "userGroups": rng.sample(GROUPS, rng.randint(0, 2)), "accessTime": start_ms}
    if rng.random() < 0.2:  # "may the user do this to any X": a prefix, or all
        last = domain.resources[depth - 1]
        resource[last] = resource[last][:rng.randint(0, len(resource[last]))]
        raw["resourceElementMatchingScopes"] = {last: "SELF_OR_PREFIX"}
    if len(domain.resources) > 1 and rng.random() < 0.2:
        raw["resourceMatchingScope"] = "SELF_OR_DESCENDANTS"
    return raw


def _roles(rng: random.Random) -> dict:
    roles = []
    for i, name in enumerate(ROLE_NAMES):
        roles.append({"id": i + 1, "name": name, "isEnabled": True,
                      "users": [{"name": u, "isAdmin": False} for u in rng.sample(USERS, rng.randint(0, 3))],
                      "groups": [{"name": g, "isAdmin": False} for g in rng.sample(GROUPS, rng.randint(0, 1))],
                      # a role contains only later roles: no cycles
                      "roles": [{"name": r, "isAdmin": False}
                                for r in rng.sample(ROLE_NAMES[i + 1:], rng.randint(0, min(1, len(ROLE_NAMES) - i - 1)))]})
    return {"serviceName": "svc", "roleVersion": 1, "rangerRoles": roles}
