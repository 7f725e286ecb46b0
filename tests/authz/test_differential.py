"""Differential test: tarn-authz's Ranger evaluator against Apache Ranger's own Java policy engine
(tests/authz/oracle, ranger-plugins-common from Maven Central).

Hypothesis generates suites (a service definition, ServicePolicies, RangerRoles and requests) on the
`triton` service definition and on a three-level `catalog` definition; every request is decided by
both engines and compared on allowed, audited and policy id. All suites go to the JVM in one run.

Which features a case exercises is measured by ablation: a case counts for a feature when removing
that feature from its input (all priorities normal, deny items dropped, ignoreCase flipped, ...)
changes our evaluator's decision; "evaluation order" counts the cases whose decision changes when
deny-bearing policies lose their place before allow-only ones. A mutation check then runs broken
evaluators on the same cases and requires each to disagree with Ranger somewhere."""
from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tarn_authz.ranger import AccessRequest, PolicyEngine, RangerRoles, ServicePolicies
from tarn_authz.ranger import compiled as compiled_module
from tarn_authz.ranger import matcher_options as matcher_options_module
from tarn_authz.ranger import policy_items as policy_items_module
from tarn_authz.ranger.validity import java_time_zone
from tests.authz.large_suites import large_suites
from tests.authz.oracle import client as oracle
from tests.authz.ranger_cases import TRITON_SERVICEDEF

pytestmark = pytest.mark.integration

SUITES = 330            # x REQUESTS_PER_SUITE cases, one JVM run
REQUESTS_PER_SUITE = 32
LARGE_SUITES = 6        # of 1,000 to 1,500 policies each (tests/authz/large_suites.py), 48 requests each
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp()) * 1000
# the moment America/Los_Angeles springs forward: Ranger converts schedule bounds near it its own way
DST_CHANGE = datetime(2026, 3, 8, 10, 0, 0, tzinfo=timezone.utc)
# just after midnight on the 1st of a month after February (a Sunday): recurrences borrow across the day,
# the week, the month and February's short length
MONTH_START = datetime(2026, 3, 1, 0, 20, 0, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DEFAULT_MATCHER = "org.apache.ranger.plugin.resourcematcher.RangerDefaultResourceMatcher"

CATALOG_SERVICEDEF = {
    "name": "catalog",
    "options": {"enableDenyAndExceptionsInPolicies": "true"},
    "resources": [
        {"itemId": i + 1, "name": name, "type": "string", "level": 10 * (i + 1), "parent": parent, "mandatory": True,
         "isValidLeaf": True, "excludesSupported": True, "recursiveSupported": False, "matcher": DEFAULT_MATCHER,
         "matcherOptions": {"wildCard": "true", "ignoreCase": "true"}}
        for i, (name, parent) in enumerate([("database", ""), ("table", "database"), ("column", "table")])
    ],
    "accessTypes": [
        {"itemId": 1, "name": "select"}, {"itemId": 2, "name": "update"}, {"itemId": 3, "name": "create"},
        {"itemId": 4, "name": "all", "impliedGrants": ["select", "update", "create"]},
    ],
    "policyConditions": [], "contextEnrichers": [],
}

USERS = ["alice", "bob", "carol", "dave"]
GROUPS = ["eng", "ops", "sales"]
ROLE_NAMES = ["ml", "admins", "viewers", "auditors"]


class Domain:
    """What a service definition's policies and requests are drawn from."""

    def __init__(self, definition: dict, patterns: dict[str, list[str]], names: dict[str, list[str]]):
        self.definition = definition
        self.resources = [r["name"] for r in definition["resources"]]
        self.accesses = [a["name"] for a in definition["accessTypes"]]
        self.patterns = patterns
        self.names = names


TRITON = Domain(
    TRITON_SERVICEDEF,
    {"model": ["*", "resnet50", "ResNet50", "res*", "Res*", "*50", "?ert-*", "b?rt*", "*-*", "llama-{USER}",
               "{USER}*", "gpt?", "g*t?", "RESNET50", "llama-*", "bert-large", "*Large"]},
    {"model": ["resnet50", "ResNet50", "RESNET50", "bert-large", "bert-Large", "llama-alice", "Llama-Alice",
               "llama-bob", "gpt2", "gpt22", "bob", "alice-x"]},
)
CATALOG = Domain(
    CATALOG_SERVICEDEF,
    {"database": ["*", "sales", "Sales", "s*", "?r", "sa?es", "{USER}_db"],
     "table": ["*", "orders", "Orders", "o*", "*s", "emp?"],
     "column": ["*", "id", "name", "n*", "?d"]},
    {"database": ["sales", "SALES", "hr", "alice_db", "x"],
     "table": ["orders", "ORDERS", "emp", "emp1", "x"],
     "column": ["id", "ID", "name", "zip"]},
)
SCHEDULE_ZONES = [None, "UTC", "GMT+05:30", "America/Los_Angeles", "Asia/Tokyo"]
SCHEDULE_OFFSETS_H = [-48, -3, -1, 0, 1, 3, 48]
RECURRENCE_FIELDS = {  # what Ranger Admin accepts, plus a few it would not (minute ranges) that its evaluator reads
    "minute": ["*", "", "0", "0,30", "15", "59", "10-40", "20"],
    "hour": ["*", "", "12", "9-17", "23", "0,12", "11-13", "22", "0"],
    "dayOfMonth": ["*", "", "1", "28-31", "1-15", "8", "31", "29", "2,28"],
    "dayOfWeek": ["*", "", "1", "2-6", "1,7", "2", "7"],
    "month": ["*", "", "6", "3", "1-6", "12", "2-3"],
    "year": ["*", "", "2026", "2025-2027", "2027"],
}
ACCESS_TIME_OFFSETS_MS = [0, 1, -1, 3_600_000, -3_600_000, 7_200_000, 10_800_000 + 1, 5 * 3_600_000 + 30 * 60_000]


def _wall(anchor: datetime, offset_h: int, zone: str | None) -> str:
    # a wall-clock time in `zone` (UTC for no zone: the oracle's JVM runs in UTC)
    return (anchor + timedelta(hours=offset_h)).astimezone(java_time_zone(zone)).strftime("%Y/%m/%d %H:%M:%S")


# -- strategies --------------------------------------------------------------------------------
def _one_in(n: int):
    # a middle value, not 0: Hypothesis favours the simplest draw, which would make the rare case common
    return st.integers(0, n - 1).map(lambda v: v == n // 2)


def _subset(pool: list[str], max_size: int = 2):
    if not pool:
        return st.just([])
    return st.lists(st.sampled_from(pool), max_size=max_size, unique=True)


@st.composite
def policy_items(draw, domain: Domain, role_names: list[str], max_items: int):
    items = []
    for _ in range(draw(st.integers(0, max_items))):
        users = draw(_subset(USERS + ["{USER}"]))
        groups = draw(_subset(GROUPS + ["public"], 1))
        roles = draw(_subset(role_names, 1)) if role_names else []
        accesses = draw(st.lists(st.sampled_from(domain.accesses), min_size=1, max_size=2, unique=True))
        refused = draw(_one_in(20))  # an access written as isAllowed=false grants nothing
        items.append({"users": users, "groups": groups, "roles": roles, "delegateAdmin": False,
                      "accesses": [{"type": a, "isAllowed": not (refused and i == 0)} for i, a in enumerate(accesses)]})
    return items


@st.composite
def policy_resources(draw, domain: Domain):
    depth = 1 if len(domain.resources) == 1 else draw(st.integers(1, len(domain.resources)))
    resources = {}
    for name in domain.resources[:depth]:
        values = draw(st.lists(st.sampled_from(domain.patterns[name]), min_size=1, max_size=3, unique=True))
        resources[name] = {"values": values, "isExcludes": draw(_one_in(8)), "isRecursive": False}
    return resources


@st.composite
def validity_schedules(draw, anchor: datetime):
    if not draw(_one_in(6)):
        return []
    schedules = []
    for _ in range(draw(st.integers(1, 2))):
        zone = draw(st.sampled_from(SCHEDULE_ZONES))
        start = draw(st.sampled_from(SCHEDULE_OFFSETS_H + [None]))
        end = draw(st.sampled_from(SCHEDULE_OFFSETS_H + [None]))
        schedule = {"recurrences": draw(recurrences()) if draw(st.booleans()) else []}
        if start is not None:
            schedule["startTime"] = _wall(anchor, start, zone)
        if end is not None:
            schedule["endTime"] = _wall(anchor, end, zone)
        if zone is not None:
            schedule["timeZone"] = zone
        schedules.append(schedule)
    return schedules


@st.composite
def recurrences(draw):
    out = []
    for _ in range(draw(st.integers(1, 2))):
        schedule = {name: draw(st.sampled_from(values)) for name, values in RECURRENCE_FIELDS.items()}
        interval = {"days": draw(st.sampled_from([0, 0, 0, 1])), "hours": draw(st.sampled_from([0, 1, 2, 3, 5])),
                    "minutes": draw(st.sampled_from([0, 1, 30, 59]))}
        out.append({"schedule": {k: v for k, v in schedule.items() if v or draw(st.booleans())}, "interval": interval})
    return out


@st.composite
def policies(draw, domain: Domain, role_names: list[str], anchor: datetime):
    count = draw(st.integers(1, 7))
    ids = draw(st.lists(st.integers(1, 99), min_size=count, max_size=count, unique=True))
    out = []
    for pid in ids:
        deny_heavy = draw(st.booleans())
        out.append({
            "id": pid, "name": draw(st.sampled_from("abmz")) + str(pid), "service": domain.definition["name"],
            "policyType": 0, "policyPriority": 1 if draw(_one_in(5)) else 0,
            "isEnabled": not draw(_one_in(10)), "isAuditEnabled": not draw(_one_in(4)),
            "isDenyAllElse": draw(_one_in(10)),
            "resources": draw(policy_resources(domain)),
            "policyItems": draw(policy_items(domain, role_names, 3)),
            "denyPolicyItems": draw(policy_items(domain, role_names, 2 if deny_heavy else 0)),
            "allowExceptions": draw(policy_items(domain, role_names, 1)),
            "denyExceptions": draw(policy_items(domain, role_names, 1 if deny_heavy else 0)),
            "validitySchedules": draw(validity_schedules(anchor)),
        })
    return out


@st.composite
def ranger_roles(draw):
    if draw(_one_in(4)):
        return None
    roles = []
    for i, name in enumerate(ROLE_NAMES):
        members = {
            "users": [{"name": u, "isAdmin": False} for u in draw(_subset(USERS, 1))],
            "groups": [{"name": g, "isAdmin": False} for g in draw(_subset(GROUPS + ["public"], 1))],
            # a role contains only later roles: no cycles
            "roles": [{"name": r, "isAdmin": False} for r in draw(_subset(ROLE_NAMES[i + 1:], 1))],
        }
        roles.append({"id": i + 1, "name": name, "isEnabled": True, **members})
    return {"serviceName": "svc", "roleVersion": 1, "rangerRoles": roles}


@st.composite
def requests(draw, domain: Domain, count: int, anchor: datetime):
    out = []
    for _ in range(count):
        if len(domain.resources) == 1:
            depth = 0 if draw(_one_in(16)) else 1
        else:
            depth = draw(st.integers(0, len(domain.resources)))
        resource = {name: draw(st.sampled_from(domain.names[name])) for name in domain.resources[:depth]}
        scopes = {}
        if resource and draw(_one_in(5)):  # "does the user have access to any X": a prefix, or all
            last = domain.resources[depth - 1]
            value = resource[last]
            resource[last] = value[: draw(st.integers(0, len(value)))]
            scopes[last] = "SELF_OR_PREFIX"
        user = None if draw(_one_in(30)) else draw(st.sampled_from(USERS))
        access = "" if draw(_one_in(8)) else draw(st.sampled_from(domain.accesses))
        raw = {"resource": resource, "accessType": access, "user": user,
               "userGroups": draw(_subset(GROUPS + ["public"] if draw(_one_in(20)) else GROUPS)),
               "accessTime": int(anchor.timestamp()) * 1000 + draw(st.sampled_from(ACCESS_TIME_OFFSETS_MS))}
        if scopes:
            raw["resourceElementMatchingScopes"] = scopes
        if len(domain.resources) > 1 and draw(_one_in(5)):
            raw["resourceMatchingScope"] = "SELF_OR_DESCENDANTS"
        out.append(raw)
    return out


@st.composite
def suites(draw):
    domain = draw(st.sampled_from([TRITON, TRITON, CATALOG]))
    definition = copy.deepcopy(domain.definition)
    ignore_case = draw(st.booleans())
    for resource in definition["resources"]:
        resource["matcherOptions"]["ignoreCase"] = str(ignore_case).lower()
    anchor = DST_CHANGE if draw(_one_in(6)) else MONTH_START if draw(_one_in(5)) else NOW
    roles = draw(ranger_roles())
    role_names = ROLE_NAMES if roles else []
    service_policies = {"serviceName": "svc", "serviceId": 1, "policyVersion": 1, "serviceDef": definition,
                        "policies": draw(policies(domain, role_names, anchor))}
    mode = draw(st.sampled_from([None, None, None, "audit-all", "audit-none", "audit-default"]))
    if mode:
        service_policies["auditMode"] = mode
    suite = {"policies": service_policies, "requests": draw(requests(domain, REQUESTS_PER_SUITE, anchor))}
    if roles:
        suite["roles"] = roles
    return suite


def generate_suites(count: int) -> list[dict]:
    collected: list[dict] = []

    @settings(max_examples=count, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(suites())
    def collect(suite):
        collected.append(suite)

    collect()
    return collected


# -- our side ----------------------------------------------------------------------------------
def engine_for(suite: dict) -> PolicyEngine:
    roles = RangerRoles.model_validate(suite["roles"]) if suite.get("roles") else None
    return PolicyEngine(ServicePolicies.model_validate(suite["policies"]), roles)


def access_request(raw: dict) -> AccessRequest:
    return AccessRequest(resource=dict(raw["resource"]), access_type=raw["accessType"], user=raw["user"],
                         user_groups=frozenset(raw["userGroups"]),
                         resource_element_matching_scopes=raw.get("resourceElementMatchingScopes", {}),
                         resource_matching_scope=raw.get("resourceMatchingScope", "SELF"))


def decide(suite: dict) -> list[tuple[bool, bool, int]]:
    engine = engine_for(suite)
    return [tuple(engine.evaluate(access_request(r), EPOCH + timedelta(milliseconds=r["accessTime"])))[:3]
            for r in suite["requests"]]


def java_decisions(answer: list[dict]) -> list[tuple[bool, bool, int]]:
    return [(r["isAllowed"], r["isAudited"], r["policyId"]) for r in answer]


# -- feature ablations: suite -> the same suite without the feature (None: feature absent) -----
def _policies(suite: dict) -> list[dict]:
    return suite["policies"]["policies"]


def _items(policy: dict) -> list[dict]:
    return policy["policyItems"] + policy["denyPolicyItems"] + policy["allowExceptions"] + policy["denyExceptions"]


def _edit_policies(suite: dict, present: Callable[[dict], bool], edit: Callable[[dict], None]) -> dict | None:
    if not any(present(p) for p in _policies(suite)):
        return None
    out = copy.deepcopy(suite)
    for p in _policies(out):
        edit(p)
    return out


def _edit_values(suite: dict, present: Callable[[str], bool], rewrite: Callable[[str], str]) -> dict | None:
    def values(p):
        return [v for r in p["resources"].values() for v in r["values"]]

    def edit(p):
        for r in p["resources"].values():
            r["values"] = [rewrite(v) if present(v) else v for v in r["values"]]
    return _edit_policies(suite, lambda p: any(present(v) for v in values(p)), edit)


def _edit_items(suite: dict, present: Callable[[dict], bool], edit: Callable[[dict], None]) -> dict | None:
    def edit_all(p):
        for item in _items(p):
            edit(item)
    return _edit_policies(suite, lambda p: any(present(i) for i in _items(p)), edit_all)


def _edit_roles(suite: dict, kind: str) -> dict | None:
    roles = suite.get("roles")
    if not roles or not any(r[kind] for r in roles["rangerRoles"]):
        return None
    out = copy.deepcopy(suite)
    for r in out["roles"]["rangerRoles"]:
        r[kind] = []
    return out


def _edit_requests(suite: dict, key: str) -> dict | None:
    if not any(key in r for r in suite["requests"]):
        return None
    out = copy.deepcopy(suite)
    for r in out["requests"]:
        r.pop(key, None)
    return out


def _flip_case(suite: dict) -> dict:
    out = copy.deepcopy(suite)
    for resource in out["policies"]["serviceDef"]["resources"]:
        options = resource["matcherOptions"]
        options["ignoreCase"] = "false" if options["ignoreCase"] == "true" else "true"
    return out


def _drop_audit_mode(suite: dict) -> dict | None:
    if not suite["policies"].get("auditMode"):
        return None
    out = copy.deepcopy(suite)
    del out["policies"]["auditMode"]
    return out


def _set(key, value):
    def edit(p):
        p[key] = value
    return edit


ABLATIONS: dict[str, Callable[[dict], dict | None]] = {
    "priority (OVERRIDE)": lambda s: _edit_policies(s, lambda p: p["policyPriority"] == 1, _set("policyPriority", 0)),
    "deny items": lambda s: _edit_policies(s, lambda p: bool(p["denyPolicyItems"]), _set("denyPolicyItems", [])),
    "allow exceptions": lambda s: _edit_policies(s, lambda p: bool(p["allowExceptions"]), _set("allowExceptions", [])),
    "deny exceptions": lambda s: _edit_policies(s, lambda p: bool(p["denyExceptions"]), _set("denyExceptions", [])),
    "deny-all-else": lambda s: _edit_policies(s, lambda p: p["isDenyAllElse"], _set("isDenyAllElse", False)),
    "excludes": lambda s: _edit_policies(
        s, lambda p: any(r["isExcludes"] for r in p["resources"].values()),
        lambda p: [r.update(isExcludes=False) for r in p["resources"].values()]),
    "match-all *": lambda s: _edit_values(s, lambda v: v == "*", lambda v: "none"),
    "wildcard *": lambda s: _edit_values(s, lambda v: "*" in v and v != "*", lambda v: v.replace("*", "#")),
    "wildcard ?": lambda s: _edit_values(s, lambda v: "?" in v, lambda v: v.replace("?", "#")),
    "ignoreCase option": _flip_case,
    "{USER} in items": lambda s: _edit_items(s, lambda i: "{USER}" in i["users"],
                                             lambda i: i.update(users=["nobody" if u == "{USER}" else u for u in i["users"]])),
    "{USER} in resources": lambda s: _edit_values(s, lambda v: "{USER}" in v, lambda v: v.replace("{USER}", "nobody")),
    "group public": lambda s: _edit_items(s, lambda i: "public" in i["groups"],
                                          lambda i: i.update(groups=["nobody" if g == "public" else g for g in i["groups"]])),
    "roles in items": lambda s: _edit_items(s, lambda i: bool(i["roles"]), lambda i: i.update(roles=[])),
    "roles granted to users": lambda s: _edit_roles(s, "users"),
    "roles granted to groups": lambda s: _edit_roles(s, "groups"),
    "roles granted to roles": lambda s: _edit_roles(s, "roles"),
    "disabled policies": lambda s: _edit_policies(s, lambda p: not p["isEnabled"], _set("isEnabled", True)),
    "validity schedules": lambda s: _edit_policies(s, lambda p: bool(p["validitySchedules"]), _set("validitySchedules", [])),
    "validity recurrences": lambda s: _edit_policies(
        s, lambda p: any(v["recurrences"] for v in p["validitySchedules"]),
        lambda p: [v.update(recurrences=[]) for v in p["validitySchedules"]]),
    "audit flag off": lambda s: _edit_policies(s, lambda p: not p["isAuditEnabled"], _set("isAuditEnabled", True)),
    "service audit mode": _drop_audit_mode,
    "SELF_OR_PREFIX scope": lambda s: _edit_requests(s, "resourceElementMatchingScopes"),
    "SELF_OR_DESCENDANTS scope": lambda s: _edit_requests(s, "resourceMatchingScope"),
}


def feature_hits(suites_: list[dict], ours: list[list[tuple]]) -> Counter:
    """For each feature, how many cases' decision depends on it (our evaluator, which must equal Ranger's)."""
    hits: Counter = Counter()
    for suite, decisions in zip(suites_, ours):
        hits["multi-level service def"] += len(decisions) if len(suite["policies"]["serviceDef"]["resources"]) > 1 else 0
        hits["_any access"] += sum(1 for r in suite["requests"] if r["accessType"] == "")
        for feature, ablate in ABLATIONS.items():
            variant = ablate(suite)
            if variant is not None:
                hits[feature] += sum(a != b for a, b in zip(decisions, decide(variant)))
    return hits


# -- deliberately broken evaluators ----------------------------------------------------------------
def _no_deny_first(self):
    key = _original_sort_key(self)
    return key[:1] + key[2:]


def _ignore_exceptions(items, exceptions, user, groups, roles, access):
    return _original_first_match(items, (), user, groups, roles, access)


def _flipped_case(self, resource_def):
    _original_options_init(self, resource_def)
    self.ignore_case = not self.ignore_case


_original_sort_key = compiled_module.CompiledPolicy.sort_key
_original_first_match = policy_items_module._first_match
_original_options_init = matcher_options_module.MatcherOptions.__init__

MUTANTS = {
    "deny-first order removed": lambda: mock.patch.object(compiled_module.CompiledPolicy, "sort_key", _no_deny_first),
    "exceptions ignored": lambda: mock.patch.object(policy_items_module, "_first_match", _ignore_exceptions),
    "case option flipped": lambda: mock.patch.object(matcher_options_module.MatcherOptions, "__init__", _flipped_case),
}


def disagreements(suites_: list[dict], ours: list[list[tuple]], theirs: list[list[tuple]]) -> list[dict]:
    found = []
    for index, (suite, mine, java) in enumerate(zip(suites_, ours, theirs)):
        for request, a, b in zip(suite["requests"], mine, java):
            if a != b:
                found.append({"suite": index, "request": request, "ours": a, "ranger": b})
    return found


# -- the test ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def differential():
    oracle.build()
    generated = generate_suites(SUITES) + large_suites([TRITON, TRITON, CATALOG], LARGE_SUITES, 20260601, NOW_MS)
    # Ranger's JVM and our evaluator work side by side: the JVM is a subprocess.
    with ThreadPoolExecutor(max_workers=1) as pool:
        java_run = pool.submit(oracle.evaluate, generated)
        ours = [decide(s) for s in generated]
        answers = java_run.result()
    rejected = [(i, a) for i, a in enumerate(answers) if isinstance(a, str)]
    assert not rejected, f"Ranger rejected {len(rejected)} suites, e.g. {rejected[:3]}"
    theirs = [java_decisions(a) for a in answers]
    return generated, ours, theirs


def test_evaluator_agrees_with_rangers_java_engine(differential, capsys):
    generated, ours, theirs = differential
    cases = sum(len(d) for d in ours)
    assert cases >= 10_000, f"only {cases} cases generated"
    found = disagreements(generated, ours, theirs)

    small = len(generated) - LARGE_SUITES  # the ablations run on the small suites only (they rebuild each one)
    hits = feature_hits(generated[:small], ours[:small])
    with MUTANTS["deny-first order removed"]():
        hits["evaluation order (deny first)"] = sum(
            a != b for s, d in zip(generated[:small], ours[:small]) for a, b in zip(d, decide(s)))
    large = [(len(_policies(s)), len(d)) for s, d in zip(generated[small:], ours[small:])]
    assert all(n >= 1000 for n, _ in large), large
    outcomes = Counter((a[0], a[2] != -1) for d in theirs for a in d)
    with capsys.disabled():  # the table belongs in every run's log, not only in failures
        print(f"\n{cases} cases in {len(generated)} suites; Ranger: {outcomes[(True, True)]} allowed, "
              f"{outcomes[(False, True)]} denied by a policy, {outcomes[(False, False)]} denied by no policy; "
              f"{len(found)} disagreements")
        print(f"of which {sum(c for _, c in large)} cases in {len(large)} suites of "
              f"{min(n for n, _ in large):,} to {max(n for n, _ in large):,} policies")
        print(f"{'feature':<32}cases whose decision depends on it")
        for feature, count in sorted(hits.items()):
            print(f"{feature:<32}{count}")
        for d in found[:5]:
            print("DISAGREEMENT", json.dumps({**d, "policies": generated[d["suite"]]["policies"]["policies"],
                                              "roles": generated[d["suite"]].get("roles")}))

    assert not found, f"{len(found)} of {cases} cases disagree with Ranger; first: {found[0]}"
    missing = [f for f in list(ABLATIONS) + ["evaluation order (deny first)", "multi-level service def", "_any access"]
               if hits[f] == 0]
    assert not missing, f"no generated case depends on: {missing}"


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_broken_evaluator_is_caught(differential, mutant, capsys):
    generated, _, theirs = differential
    with MUTANTS[mutant]():
        broken = [decide(s) for s in generated]
    found = disagreements(generated, broken, theirs)
    with capsys.disabled():
        print(f"\nmutant '{mutant}': {len(found)} disagreements with Ranger")
    assert found, f"the comparison did not catch the mutant '{mutant}'"
