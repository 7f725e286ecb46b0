"""The candidate index and the evaluation shortcuts are optimisations only: on random policy
sets and requests they give exactly what evaluating every policy in Ranger's order gives."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarn_authz.ranger import AccessRequest, PolicyEngine, ServicePolicies
from tarn_authz.ranger.policy_items import PolicyItems
from tests.authz.ranger_cases import NOW, service_def

USERS = ["alice", "bob", "carol"]
GROUPS = ["ml", "ops", "public"]
ACCESSES = ["infer", "metadata", "list"]
VALUES = ["m1", "m2", "M1", "m*", "*1", "m?", "*", "x*y", "{USER}", "{USER}-*", "a"]

items = st.lists(st.fixed_dictionaries({
    "users": st.lists(st.sampled_from(USERS + ["{USER}"]), max_size=2),
    "groups": st.lists(st.sampled_from(GROUPS), max_size=2),
    "accesses": st.lists(st.builds(lambda t: {"type": t, "isAllowed": True}, st.sampled_from(ACCESSES)),
                         min_size=1, max_size=3),
}), max_size=2)

policies = st.lists(st.fixed_dictionaries({
    "resources": st.builds(lambda v, x: {"model": {"values": v, "isExcludes": x}},
                           st.lists(st.sampled_from(VALUES), min_size=1, max_size=2), st.booleans()),
    "policyItems": items, "denyPolicyItems": items, "allowExceptions": items, "denyExceptions": items,
    "policyPriority": st.sampled_from([0, 0, 1]),
    "isDenyAllElse": st.booleans(), "isAuditEnabled": st.booleans(),
}), max_size=6)

requests = st.builds(
    lambda model, access, user, groups, prefix: AccessRequest(
        resource={} if model is None else {"model": model}, access_type=access, user=user,
        user_groups=frozenset(groups),
        resource_element_matching_scopes={"model": "SELF_OR_PREFIX"} if prefix and model is not None else {}),
    st.sampled_from([None, "", "m1", "M1", "m2", "mx", "a", "x1y", "alice", "alice-q", "*"]),
    st.sampled_from(ACCESSES + [""]), st.sampled_from(USERS), st.lists(st.sampled_from(GROUPS), max_size=2),
    st.booleans())


class ExhaustiveEngine(PolicyEngine):
    indexed = False  # Ranger's loop over every policy, for every request

    def candidates(self, request):
        return list(self.policies)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies, st.lists(requests, min_size=1, max_size=8), st.booleans())
def test_index_and_shortcuts_never_change_a_decision(raw_policies, reqs, ignore_case):
    for i, p in enumerate(raw_policies):
        p.update(id=i + 1, name=f"p{i + 1}")
    payload = ServicePolicies.model_validate(
        {"serviceDef": service_def(ignore_case=ignore_case), "policies": raw_policies})
    fast = PolicyEngine(payload)
    slow = ExhaustiveEngine(payload)
    original = PolicyItems.may_decide_for
    expected = []
    try:
        PolicyItems.may_decide_for = lambda self, principals: True
        expected = [slow.evaluate(r, NOW) for r in reqs]
    finally:
        PolicyItems.may_decide_for = original
    assert [fast.evaluate(r, NOW) for r in reqs] == expected
