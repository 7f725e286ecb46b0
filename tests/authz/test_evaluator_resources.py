"""Resource matching: wildcards, excludes, case options, {USER} in values, hierarchies."""
from __future__ import annotations

import pytest

from tarn_authz.ranger import AccessRequest, PolicyEngine, ServicePolicies
from tests.authz.ranger_cases import NOW, ask, engine, item, policy, service_def

ALICE = [item(["alice"])]


@pytest.mark.parametrize(("value", "model", "allowed"), [
    ("*", "anything", True),
    ("llama-*", "llama-7b", True),
    ("llama-*", "mistral", False),
    ("*-prod", "resnet-prod", True),
    ("*-prod", "resnet-dev", False),
    ("m?del", "model", True),
    ("m?del", "mdel", False),
    ("a*b*c", "aXXbYYc", True),
    ("a*b*c", "aXXbYY", False),
    ("?", "", False),
    ("exact", "exact", True),
    ("exact", "exact2", False),
])
def test_wildcards_star_and_question_mark(value, model, allowed):
    assert ask(engine(policy(1, [value], allow=ALICE)), model, "infer", "alice").allowed is allowed


def test_any_of_several_values_matches():
    eng = engine(policy(1, ["a", "b*"], allow=ALICE))
    assert [ask(eng, m, "infer", "alice").allowed for m in ("a", "bee", "c")] == [True, True, False]


def test_excludes_matches_everything_but_the_values():
    eng = engine(policy(1, ["secret-*"], allow=ALICE, excludes=True))
    assert ask(eng, "public-model", "infer", "alice").allowed is True
    assert ask(eng, "secret-1", "infer", "alice").allowed is False


def test_excludes_on_deny_policy_protects_the_rest():
    eng = engine(policy(1, ["*"], allow=[item(groups=["public"])]),
                 policy(2, ["shared-*"], deny=ALICE, excludes=True))
    assert ask(eng, "shared-x", "infer", "alice")[:3] == (True, True, 1)
    assert ask(eng, "private", "infer", "alice")[:3] == (False, True, 2)


def test_case_sensitive_when_ignore_case_false():
    eng = engine(policy(1, ["Model-A"], allow=ALICE), definition=service_def(ignore_case=False))
    assert ask(eng, "Model-A", "infer", "alice").allowed is True
    assert ask(eng, "model-a", "infer", "alice").allowed is False


def test_case_insensitive_when_ignore_case_true():
    eng = engine(policy(1, ["Model-*"], allow=ALICE), definition=service_def(ignore_case=True))
    assert ask(eng, "MODEL-a", "infer", "alice").allowed is True


def test_ignore_case_defaults_to_true_when_not_set():
    definition = service_def()
    del definition["resources"][0]["matcherOptions"]["ignoreCase"]
    eng = engine(policy(1, ["Model"], allow=ALICE), definition=definition)
    assert ask(eng, "model", "infer", "alice").allowed is True


def test_quoted_case_sensitive_compares_quoted_values_exactly():
    eng = engine(policy(1, ['"Model"', "plain"], allow=ALICE),
                 definition=service_def(ignore_case=True, quotedCaseSensitive=True))
    assert ask(eng, '"Model"', "infer", "alice").allowed is True
    assert ask(eng, '"model"', "infer", "alice").allowed is False
    assert ask(eng, "PLAIN", "infer", "alice").allowed is True


def test_wildcard_option_off_treats_star_literally():
    eng = engine(policy(1, ["m*"], allow=ALICE), definition=service_def(wildCard=False))
    assert ask(eng, "m*", "infer", "alice").allowed is True
    assert ask(eng, "model", "infer", "alice").allowed is False


def test_user_token_in_resource_value():
    eng = engine(policy(1, ["home-{USER}"], allow=[item(groups=["public"])]))
    assert ask(eng, "home-alice", "infer", "alice").allowed is True
    assert ask(eng, "home-bob", "infer", "alice").allowed is False


def test_user_token_with_wildcard_in_resource_value():
    eng = engine(policy(1, ["{USER}-*"], allow=[item(groups=["public"])]))
    assert ask(eng, "alice-llm", "infer", "alice").allowed is True
    assert ask(eng, "bob-llm", "infer", "alice").allowed is False


def test_escaped_token_is_literal():
    eng = engine(policy(1, ["home-\\{USER}"], allow=[item(groups=["public"])]))
    assert ask(eng, "home-{USER}", "infer", "alice").allowed is True
    assert ask(eng, "home-alice", "infer", "alice").allowed is False


def test_request_for_unknown_resource_name_matches_nothing():
    eng = engine(policy(1, ["*"], allow=ALICE))
    request = AccessRequest(resource={"table": "t"}, access_type="infer", user="alice")
    assert eng.evaluate(request, NOW).allowed is False


HIVE_LIKE = {
    "name": "hive-like", "resources": [
        {"name": "database", "level": 1, "matcherOptions": {"wildCard": True, "ignoreCase": True}},
        {"name": "table", "level": 2, "parent": "database", "matcherOptions": {"wildCard": True, "ignoreCase": True}},
    ],
    "accessTypes": [{"name": "select"}, {"name": "update"}],
}


def _hive(*policies):
    return PolicyEngine(ServicePolicies.model_validate({"serviceDef": HIVE_LIKE, "policies": list(policies)}))


def _hive_policy(pid, resources, users=("alice",)):
    return {"id": pid, "name": f"p{pid}", "resources": {k: {"values": v} for k, v in resources.items()},
            "policyItems": [{"users": list(users), "accesses": [{"type": "select"}]}]}


def test_hierarchy_parent_only_policy_does_not_cover_children():
    eng = _hive(_hive_policy(1, {"database": ["db1"]}))
    child = AccessRequest(resource={"database": "db1", "table": "t1"}, access_type="select", user="alice")
    parent = AccessRequest(resource={"database": "db1"}, access_type="select", user="alice")
    assert eng.evaluate(child, NOW).allowed is False
    assert eng.evaluate(parent, NOW).allowed is True


def test_hierarchy_policy_with_child_wildcard_covers_children_and_parent():
    eng = _hive(_hive_policy(1, {"database": ["db1"], "table": ["*"]}))
    child = AccessRequest(resource={"database": "db1", "table": "t1"}, access_type="select", user="alice")
    parent = AccessRequest(resource={"database": "db1"}, access_type="select", user="alice")
    assert eng.evaluate(child, NOW).allowed is True
    assert eng.evaluate(parent, NOW).allowed is True


def test_hierarchy_request_with_a_gap_matches_nothing():
    eng = _hive(_hive_policy(1, {"database": ["*"], "table": ["*"]}))
    gap = AccessRequest(resource={"table": "t1"}, access_type="select", user="alice")
    assert eng.evaluate(gap, NOW).allowed is False
