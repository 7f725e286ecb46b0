"""Policy items: exceptions, {USER}, group public, roles, implied grants, access type matching."""
from __future__ import annotations

from tarn_authz.ranger import RangerUserStore
from tests.authz.ranger_cases import ask, engine, item, policy, role, service_def


def test_allow_exception_removes_the_allow():
    eng = engine(policy(1, ["m"], allow=[item(groups=["ml"])], allow_exceptions=[item(["bob"])]))
    assert ask(eng, "m", "infer", "alice", ["ml"])[:3] == (True, True, 1)
    assert ask(eng, "m", "infer", "bob", ["ml"])[:3] == (False, True, -1)


def test_allow_exception_only_for_the_listed_access():
    eng = engine(policy(1, ["m"], allow=[item(groups=["ml"], accesses=["infer", "list"])],
                        allow_exceptions=[item(["bob"], accesses=["list"])]))
    assert ask(eng, "m", "infer", "bob", ["ml"]).allowed is True
    assert ask(eng, "m", "list", "bob", ["ml"]).allowed is False


def test_deny_exception_lets_the_allow_through():
    eng = engine(policy(1, ["m"], allow=[item(groups=["ml"])], deny=[item(groups=["ml"])],
                        deny_exceptions=[item(["alice"])]))
    assert ask(eng, "m", "infer", "alice", ["ml"])[:3] == (True, True, 1)
    assert ask(eng, "m", "infer", "bob", ["ml"])[:3] == (False, True, 1)


def test_deny_exception_without_allow_leaves_access_undecided():
    eng = engine(policy(1, ["m"], deny=[item(groups=["ml"])], deny_exceptions=[item(["alice"])]))
    assert ask(eng, "m", "infer", "alice", ["ml"])[:3] == (False, True, -1)


def test_exception_in_one_policy_does_not_block_another_policy():
    eng = engine(policy(1, ["m"], allow=[item(groups=["ml"])], allow_exceptions=[item(["bob"])]),
                 policy(2, ["m"], allow=[item(["bob"])]))
    assert ask(eng, "m", "infer", "bob", ["ml"])[:3] == (True, True, 2)


def test_user_token_grants_every_named_user():
    eng = engine(policy(1, ["m"], allow=[item(["{USER}"])]))
    assert ask(eng, "m", "infer", "anyone").allowed is True
    assert ask(eng, "m", "infer", None).allowed is False


def test_group_public_grants_users_without_groups():
    eng = engine(policy(1, ["m"], allow=[item(groups=["public"])]))
    assert ask(eng, "m", "infer", "alice", []).allowed is True


def test_user_names_are_case_sensitive():
    eng = engine(policy(1, ["m"], allow=[item(["Alice"])]))
    assert ask(eng, "m", "infer", "alice").allowed is False


def test_role_granted_to_user():
    eng = engine(policy(1, ["m"], allow=[item(roles=["scientists"])]),
                 roles=[role("scientists", users=["alice"])])
    assert ask(eng, "m", "infer", "alice")[:3] == (True, True, 1)
    assert ask(eng, "m", "infer", "bob").allowed is False


def test_role_granted_to_group():
    eng = engine(policy(1, ["m"], allow=[item(roles=["scientists"])]),
                 roles=[role("scientists", groups=["ml"])])
    assert ask(eng, "m", "infer", "bob", ["ml"]).allowed is True
    assert ask(eng, "m", "infer", "bob", ["ops"]).allowed is False


def test_role_granted_through_a_contained_role():
    # members of 'juniors' hold 'scientists' too, because 'scientists' contains 'juniors'
    eng = engine(policy(1, ["m"], allow=[item(roles=["scientists"])]),
                 roles=[role("scientists", roles=["juniors"]), role("juniors", users=["carol"])])
    assert ask(eng, "m", "infer", "carol").allowed is True


def test_contained_role_does_not_grant_the_container_s_members():
    eng = engine(policy(1, ["m"], allow=[item(roles=["juniors"])]),
                 roles=[role("scientists", users=["alice"], roles=["juniors"]), role("juniors", users=["carol"])])
    assert ask(eng, "m", "infer", "alice").allowed is False


def test_roles_nested_two_levels_and_cyclic_roles_terminate():
    eng = engine(policy(1, ["m"], allow=[item(roles=["a"])]),
                 roles=[role("a", roles=["b"]), role("b", roles=["c", "a"]), role("c", groups=["g"])])
    assert ask(eng, "m", "infer", "dave", ["g"]).allowed is True


def test_role_granted_to_group_public_reaches_everyone():
    eng = engine(policy(1, ["m"], allow=[item(roles=["everyone"])]),
                 roles=[role("everyone", groups=["public"])])
    assert ask(eng, "m", "infer", "zed").allowed is True


def test_role_in_deny_item():
    eng = engine(policy(1, ["m"], allow=[item(groups=["public"])], deny=[item(roles=["banned"])]),
                 roles=[role("banned", users=["mallory"])])
    assert ask(eng, "m", "infer", "mallory")[:3] == (False, True, 1)


def test_implied_grant_infer_gives_metadata_not_list():
    eng = engine(policy(1, ["m"], allow=[item(["alice"], accesses=["infer"])]))
    assert ask(eng, "m", "metadata", "alice").allowed is True
    assert ask(eng, "m", "list", "alice").allowed is False


def test_implied_grant_applies_to_deny_items_too():
    eng = engine(policy(1, ["m"], allow=[item(["alice"], accesses=["metadata"])],
                        deny=[item(["alice"], accesses=["infer"])]))
    assert ask(eng, "m", "metadata", "alice")[:3] == (False, True, 1)


def test_access_type_in_policy_matches_ignoring_case():
    eng = engine(policy(1, ["m"], allow=[item(["alice"], accesses=["INFER"])]))
    assert ask(eng, "m", "infer", "alice").allowed is True


def test_access_marked_not_allowed_grants_nothing():
    eng = engine(policy(1, ["m"], allow=[item(["alice"], accesses=["infer"], allowed=False)]))
    assert ask(eng, "m", "infer", "alice").allowed is False


def test_deny_items_ignored_when_service_def_disables_them():
    definition = service_def()
    definition["options"]["enableDenyAndExceptionsInPolicies"] = "false"
    eng = engine(policy(1, ["m"], allow=[item(["alice"])], deny=[item(["alice"])]), definition=definition)
    assert ask(eng, "m", "infer", "alice").allowed is True


def test_user_store_gives_a_user_s_groups():
    store = RangerUserStore.model_validate({"userStoreVersion": 3, "userGroupMapping": {"alice": ["ml", "ops"]}})
    assert store.groups_of("alice") == frozenset({"ml", "ops"})
    assert store.groups_of("nobody") == frozenset()
