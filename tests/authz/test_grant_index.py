"""The grant index (the resource trie by principal and access) never leaves out a policy that
matters: on random policy sets, one- and two-level service definitions and requests, every
policy the full scan matches and whose items decide the request is among its deciders, and
every audited policy the scan matches is among its audited candidates."""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarn_authz.ranger import AccessRequest, PolicyEngine, ServicePolicies
from tarn_authz.ranger.evaluator import _Scan
from tarn_authz.ranger.grant_index import ANYONE
from tarn_authz.ranger.javacompat import fold_case
from tests.authz.ranger_cases import NOW, TRITON_SERVICEDEF, engine, item, policy, request

USERS = ["alice", "bob"]
GROUPS = ["ml", "ops", "public"]
ACCESSES = ["infer", "metadata", "list"]
VALUES = ["m1", "M1", "m*", "*1", "m?", "*", "x*y", "{USER}", "{USER}-*", "a", '"M1"', "m1*1", "*m*"]
NAMES = ["", "*", "m1", "M1", "m", "mx", "a", "x1y", "alice", "alice-q", '"M1"', "m11", "zm"]


def two_levels(quoted: bool) -> dict:
    definition = copy.deepcopy(TRITON_SERVICEDEF)
    model = definition["resources"][0]
    model["matcherOptions"]["quotedCaseSensitive"] = str(quoted).lower()
    definition["resources"].append({**copy.deepcopy(model), "itemId": model["itemId"] + 1, "name": "version",
                                    "parent": model["name"], "level": model.get("level", 10) + 10})
    return definition


items = st.lists(st.fixed_dictionaries({
    "users": st.lists(st.sampled_from(USERS + ["{USER}"]), max_size=2),
    "groups": st.lists(st.sampled_from(GROUPS), max_size=2),
    "roles": st.lists(st.sampled_from(["r1"]), max_size=1),
    "accesses": st.lists(st.builds(lambda t: {"type": t, "isAllowed": True}, st.sampled_from(ACCESSES)),
                         min_size=1, max_size=2),
}), max_size=2)
resource_sets = st.fixed_dictionaries(
    {"model": st.builds(lambda v, x: {"values": v, "isExcludes": x},
                        st.lists(st.sampled_from(VALUES), min_size=1, max_size=2), st.booleans())},
    optional={"version": st.builds(lambda v: {"values": v}, st.lists(st.sampled_from(VALUES), min_size=1, max_size=2))})
policies = st.lists(st.fixed_dictionaries({
    "resources": resource_sets, "additionalResources": st.lists(resource_sets, max_size=1),
    "policyItems": items, "denyPolicyItems": items, "isDenyAllElse": st.booleans(),
    "isAuditEnabled": st.booleans(), "policyPriority": st.sampled_from([0, 1]),
}), max_size=8)
requests = st.builds(
    lambda model, version, access, user, groups, prefix: AccessRequest(
        resource={"model": model, **({} if version is None else {"version": version})}, access_type=access,
        user=user, user_groups=frozenset(groups), user_roles=frozenset(["r1"]) if user == "bob" else frozenset(),
        resource_element_matching_scopes={"model": "SELF_OR_PREFIX"} if prefix else {}),
    st.sampled_from(NAMES), st.one_of(st.none(), st.sampled_from(NAMES)), st.sampled_from(ACCESSES),
    st.sampled_from(USERS + [None]), st.lists(st.sampled_from(GROUPS), max_size=2), st.booleans())


def index_answer(eng: PolicyEngine, req: AccessRequest) -> tuple[set[int], set[int]]:
    principals = frozenset(["u:" + req.user] if req.user else []).union(
        ["g:" + g for g in req.user_groups], ["r:" + r for r in req.user_roles], [ANYONE])
    deciders, audited = eng._grants.lookup(req.resource, req.resource_element_matching_scopes, principals,
                                           fold_case(req.access_type))
    return {r for ranks in deciders for r in ranks}, {r for ranks in audited for r in ranks}


def scan_answer(eng: PolicyEngine, req: AccessRequest) -> tuple[set[int], set[int]]:
    """What the full scan matches: those whose items decide, and those audited."""
    scan = _Scan(req, (req.access_type,), req.user_roles, frozenset(), False)
    deciding, audited = set(), set()
    for rank, pol in enumerate(eng.policies):
        if not any(scan.match_type(prm) is not None for prm in pol.resources):
            continue
        if pol.audit_enabled:
            audited.add(rank)
        decided = pol.items.determining_item(req.user, req.user_groups, req.user_roles, fold_case(req.access_type))
        if decided is not None or pol.deny_all_else:
            deciding.add(rank)
    return deciding, audited


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies, st.lists(requests, min_size=1, max_size=8), st.booleans(), st.booleans())
def test_index_holds_every_policy_the_scan_matches_and_decides_or_audits_with(raw, reqs, ignore_case, quoted):
    definition = two_levels(quoted)
    for resource in definition["resources"]:
        resource["matcherOptions"]["ignoreCase"] = str(ignore_case).lower()
    for i, p in enumerate(raw):
        p.update(id=i + 1, name=f"p{i + 1}")
    eng = PolicyEngine(ServicePolicies.model_validate({"serviceDef": definition, "policies": raw}))
    for req in reqs:
        deciders, audited = index_answer(eng, req)
        want_deciders, want_audited = scan_answer(eng, req)
        assert want_deciders <= deciders, (req, want_deciders - deciders)
        assert want_audited <= audited, (req, want_audited - audited)


def test_a_pattern_shared_by_many_policies_is_one_entry_and_only_matching_ones_are_candidates():
    alice = item(users=["alice"])
    eng = engine(*[policy(i, [f"m?del-{i % 3}*"], allow=[alice]) for i in range(1, 31)],
                 policy(99, ["other-*"], allow=[alice]))
    level = eng._grants._levels["model"]
    assert len(level.heads["m"]) == 3
    deciders, _ = index_answer(eng, request("model-1x", "infer", "alice"))
    assert sorted(eng.policies[r].id for r in deciders) == list(range(1, 31, 3))


def test_list_any_candidates_are_only_the_policies_that_grant_list_to_the_principal():
    eng = engine(*[policy(i, [f"model-{i}"], allow=[item(users=[f"user{i % 10}"], accesses=["list"])])
                   for i in range(1, 101)],
                 policy(200, ["*"], allow=[item(groups=["public"], accesses=["infer"])]))
    ask_list = request("", "list", "user3", scopes={"model": "SELF_OR_PREFIX"})
    deciders, _ = index_answer(eng, ask_list)
    assert sorted(eng.policies[r].id for r in deciders) == list(range(3, 101, 10))
    assert eng.evaluate(ask_list, NOW).allowed
