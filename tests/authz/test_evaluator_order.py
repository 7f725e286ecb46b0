"""Priorities, deny-before-allow and Ranger's policy evaluation order."""
from __future__ import annotations

from tests.authz.ranger_cases import ask, engine, item, policy


def test_override_allow_beats_normal_deny():
    eng = engine(policy(1, ["m"], deny=[item(["alice"])]),
                 policy(2, ["m"], allow=[item(["alice"])], priority=1))
    assert ask(eng, "m", "infer", "alice")[:3] == (True, True, 2)


def test_override_deny_beats_normal_allow():
    eng = engine(policy(1, ["m"], allow=[item(["alice"])]),
                 policy(2, ["m"], deny=[item(["alice"])], priority=1))
    assert ask(eng, "m", "infer", "alice")[:3] == (False, True, 2)


def test_deny_beats_allow_at_the_same_priority():
    eng = engine(policy(1, ["m"], allow=[item(["alice"])]),
                 policy(2, ["m"], deny=[item(["alice"])]))
    assert ask(eng, "m", "infer", "alice")[:3] == (False, True, 2)


def test_deny_policy_is_evaluated_first_whatever_its_name():
    eng = engine(policy(1, ["m"], allow=[item(["alice"])], name="aaa"),
                 policy(2, ["m"], deny=[item(["alice"])], name="zzz"))
    assert ask(eng, "m", "infer", "alice").policy_id == 2


def test_deny_and_allow_items_in_one_policy_deny_wins():
    eng = engine(policy(1, ["m"], allow=[item(groups=["ml"])], deny=[item(["alice"])]))
    assert ask(eng, "m", "infer", "alice", ["ml"])[:3] == (False, True, 1)
    assert ask(eng, "m", "infer", "bob", ["ml"])[:3] == (True, True, 1)


def test_override_deny_and_override_allow_deny_wins():
    eng = engine(policy(1, ["m"], allow=[item(["alice"])], priority=1),
                 policy(2, ["m"], deny=[item(["alice"])], priority=1))
    assert ask(eng, "m", "infer", "alice")[:3] == (False, True, 2)


def test_deny_all_else_denies_users_not_listed():
    eng = engine(policy(1, ["m"], allow=[item(["alice"])], deny_all_else=True))
    assert ask(eng, "m", "infer", "alice")[:3] == (True, True, 1)
    assert ask(eng, "m", "infer", "bob")[:3] == (False, True, 1)


def test_deny_all_else_denies_access_types_not_granted():
    eng = engine(policy(1, ["m"], allow=[item(["alice"], accesses=["infer"])], deny_all_else=True))
    assert ask(eng, "m", "list", "alice")[:3] == (False, True, 1)


def test_deny_all_else_is_evaluated_before_normal_allow_policies():
    eng = engine(policy(1, ["m"], allow=[item(["bob"])], name="aaa"),
                 policy(2, ["m"], allow=[item(["alice"])], deny_all_else=True, name="zzz"))
    assert ask(eng, "m", "infer", "bob")[:3] == (False, True, 2)


def test_normal_deny_all_else_loses_to_override_allow():
    eng = engine(policy(1, ["m"], allow=[item(["alice"])], deny_all_else=True),
                 policy(2, ["m"], allow=[item(["bob"])], priority=1))
    assert ask(eng, "m", "infer", "bob")[:3] == (True, True, 2)


def test_deny_all_else_only_covers_its_own_resources():
    eng = engine(policy(1, ["m"], allow=[item(["alice"])], deny_all_else=True),
                 policy(2, ["other"], allow=[item(["bob"])]))
    assert ask(eng, "other", "infer", "bob")[:3] == (True, True, 2)


def test_broader_allow_policy_comes_first_in_eval_order():
    # RangerOptimizedPolicyEvaluator: a match-any resource earns the largest discount
    eng = engine(policy(1, ["m1"], allow=[item(["alice"])]),
                 policy(2, ["*"], allow=[item(["alice"])]))
    assert ask(eng, "m1", "infer", "alice").policy_id == 2


def test_equal_eval_order_falls_back_to_policy_name():
    eng = engine(policy(1, ["m1"], allow=[item(["alice"])], name="b-policy"),
                 policy(2, ["m1"], allow=[item(["alice"])], name="a-policy"))
    assert ask(eng, "m1", "infer", "alice").policy_id == 2


def test_nothing_matches_denies_with_policy_id_minus_one():
    eng = engine(policy(1, ["m"], allow=[item(["alice"])]))
    decision = ask(eng, "m", "infer", "bob")
    assert (decision.allowed, decision.policy_id) == (False, -1)


def test_lower_priority_deny_cannot_undo_override_allow_for_another_access():
    eng = engine(policy(1, ["m"], allow=[item(["alice"], accesses=["list"])], priority=1),
                 policy(2, ["m"], deny=[item(["alice"], accesses=["list"])]))
    assert ask(eng, "m", "list", "alice")[:3] == (True, True, 1)
