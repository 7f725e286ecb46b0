"""Disabled and scheduled policies, audit flag and audit modes, the 'any model' scope a list
check uses, the decision cache, and what the evaluator refuses to guess."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tarn_authz.ranger import AccessRequest, DecisionCache, PolicyEngine, ServicePolicies, UnsupportedPolicyFeature
from tests.authz.ranger_cases import NOW, TRITON_SERVICEDEF, ask, engine, item, policy, request

ALICE = [item(["alice"])]


def test_disabled_policy_is_ignored():
    eng = engine(policy(1, ["m"], allow=ALICE, enabled=False))
    assert ask(eng, "m", "infer", "alice")[:3] == (False, False, -1)


def test_disabled_deny_policy_does_not_deny():
    eng = engine(policy(1, ["m"], allow=ALICE), policy(2, ["m"], deny=ALICE, enabled=False))
    assert ask(eng, "m", "infer", "alice")[:3] == (True, True, 1)


def _window(start, end, tz=None):
    schedule = {"startTime": start, "endTime": end}
    if tz:
        schedule["timeZone"] = tz
    return schedule


def test_policy_outside_its_validity_schedule_does_not_apply():
    eng = engine(policy(1, ["m"], allow=ALICE, schedules=[_window("2025/01/01 00:00:00", "2025/12/31 23:59:59")]))
    assert ask(eng, "m", "infer", "alice").allowed is False


def test_policy_inside_its_validity_schedule_applies():
    eng = engine(policy(1, ["m"], allow=ALICE, schedules=[_window("2026/05/01 00:00:00", "2026/07/01 00:00:00")]))
    assert ask(eng, "m", "infer", "alice").allowed is True


def test_validity_schedule_end_is_inclusive():
    eng = engine(policy(1, ["m"], allow=ALICE, schedules=[_window("", "2026/06/01 12:00:00")]))
    assert ask(eng, "m", "infer", "alice", now=NOW).allowed is True
    assert ask(eng, "m", "infer", "alice", now=NOW + timedelta(seconds=1)).allowed is False


def test_validity_schedule_reads_times_in_its_time_zone():
    # 14:00-15:00 in Paris (UTC+2 in June) is 12:00-13:00 UTC
    eng = engine(policy(1, ["m"], allow=ALICE,
                        schedules=[_window("2026/06/01 14:00:00", "2026/06/01 15:00:00", "Europe/Paris")]))
    assert ask(eng, "m", "infer", "alice", now=NOW + timedelta(minutes=30)).allowed is True
    assert ask(eng, "m", "infer", "alice", now=NOW - timedelta(minutes=30)).allowed is False


def test_validity_schedule_without_time_zone_is_gmt():
    eng = engine(policy(1, ["m"], allow=ALICE, schedules=[_window("2026/06/01 12:30:00", "")]))
    assert ask(eng, "m", "infer", "alice", now=NOW).allowed is False
    assert ask(eng, "m", "infer", "alice", now=NOW + timedelta(hours=1)).allowed is True


def test_any_of_several_schedules_makes_the_policy_apply():
    eng = engine(policy(1, ["m"], allow=ALICE, schedules=[
        _window("2020/01/01 00:00:00", "2020/01/02 00:00:00"), _window("2026/06/01 00:00:00", "")]))
    assert ask(eng, "m", "infer", "alice").allowed is True


def test_expired_deny_policy_no_longer_denies():
    eng = engine(policy(1, ["m"], allow=ALICE),
                 policy(2, ["m"], deny=ALICE, schedules=[_window("2020/01/01 00:00:00", "2021/01/01 00:00:00")]))
    assert ask(eng, "m", "infer", "alice")[:3] == (True, True, 1)


def test_evaluator_reads_no_clock():
    eng = engine(policy(1, ["m"], allow=ALICE, schedules=[_window("2030/01/01 00:00:00", "")]))
    future = datetime(2031, 1, 1, tzinfo=timezone.utc)
    assert ask(eng, "m", "infer", "alice", now=future).allowed is True
    assert ask(eng, "m", "infer", "alice", now=NOW).allowed is False


def test_audit_flag_off_means_not_audited():
    eng = engine(policy(1, ["m"], allow=ALICE, audit=False))
    assert ask(eng, "m", "infer", "alice")[:3] == (True, False, 1)


def test_audit_comes_from_any_matching_policy_not_only_the_deciding_one():
    eng = engine(policy(1, ["m"], allow=ALICE, audit=False), policy(2, ["*"], allow=[item(["bob"])], name="zzz"))
    assert ask(eng, "m", "infer", "alice")[:3] == (True, True, 1)


def test_unmatched_request_with_policies_is_not_audited():
    eng = engine(policy(1, ["m"], allow=ALICE))
    assert ask(eng, "other", "infer", "alice").audited is False


def test_no_policies_at_all_is_denied_and_audited():
    eng = engine()
    assert ask(eng, "m", "infer", "alice")[:3] == (False, True, -1)


def test_audit_all_mode_audits_everything():
    eng = engine(policy(1, ["m"], allow=ALICE, audit=False), audit_mode="audit-all")
    assert ask(eng, "m", "infer", "alice").audited is True
    assert ask(eng, "other", "infer", "alice").audited is True


def test_audit_none_mode_audits_nothing():
    eng = engine(policy(1, ["m"], allow=ALICE), audit_mode="audit-none")
    assert ask(eng, "m", "infer", "alice")[:3] == (True, False, 1)


PREFIX = {"model": "SELF_OR_PREFIX"}


def test_list_any_model_with_self_or_prefix_scope():
    eng = engine(policy(1, ["llama-*"], allow=[item(["bob"], accesses=["list"])]))
    assert ask(eng, "", "list", "bob", scopes=PREFIX)[:3] == (True, True, 1)
    assert ask(eng, "", "list", "carol", scopes=PREFIX)[:3] == (False, True, -1)


def test_self_or_prefix_scope_matches_policies_whose_values_extend_the_prefix():
    eng = engine(policy(1, ["llama-7b"], allow=[item(["bob"], accesses=["list"])]))
    assert ask(eng, "lla", "list", "bob", scopes=PREFIX).allowed is True
    assert ask(eng, "mis", "list", "bob", scopes=PREFIX).allowed is False
    assert ask(eng, "lla", "list", "bob").allowed is False


def test_any_access_on_empty_resource_finds_access_anywhere():
    eng = engine(policy(1, ["m1"], allow=[item(["alice"], accesses=["list"])]))
    assert ask(eng, None, "", "alice")[:3] == (True, True, 1)
    assert ask(eng, None, "", "bob").allowed is False


def test_any_access_ignores_denies_on_descendants():
    eng = engine(policy(1, ["m1"], deny=[item(["alice"])]),
                 policy(2, ["*"], allow=[item(["alice"], accesses=["list"])]))
    assert ask(eng, None, "_any", "alice")[:3] == (True, True, 2)


def test_cached_decision_equals_uncached():
    eng = engine(policy(1, ["m"], allow=ALICE), policy(2, ["m"], deny=[item(["bob"])]))
    cache = DecisionCache(eng)
    for user in ("alice", "bob", "carol"):
        req = request("m", "infer", user)
        first, second = cache.evaluate(req, NOW), cache.evaluate(req, NOW)
        assert first == second == eng.evaluate(req, NOW)
    assert cache.hits == 3 and cache.misses == 3


def test_cache_is_emptied_when_policies_change():
    cache = DecisionCache(engine(policy(1, ["m"], allow=ALICE)))
    req = request("m", "infer", "alice")
    assert cache.evaluate(req, NOW).allowed is True
    cache.replace_engine(engine(policy(1, ["m"], deny=ALICE)))
    assert cache.evaluate(req, NOW).allowed is False


def test_cache_separates_groups():
    cache = DecisionCache(engine(policy(1, ["m"], allow=[item(groups=["ml"])])))
    assert cache.evaluate(request("m", "infer", "alice", ["ml"]), NOW).allowed is True
    assert cache.evaluate(request("m", "infer", "alice", []), NOW).allowed is False


def test_cache_respects_validity_schedule_boundaries():
    cache = DecisionCache(engine(policy(1, ["m"], allow=ALICE, schedules=[_window("", "2026/06/01 12:00:00")])))
    req = request("m", "infer", "alice")
    assert cache.evaluate(req, NOW).allowed is True
    assert cache.evaluate(req, NOW + timedelta(seconds=5)).allowed is False


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        ask(engine(policy(1, ["m"], allow=ALICE)), "m", "infer", "alice", now=datetime(2026, 1, 1))


def test_tag_based_policies_are_refused_rather_than_skipped():
    payload = {"serviceDef": TRITON_SERVICEDEF, "policies": [],
               "tagPolicies": {"serviceName": "tags", "policies": [{"id": 9, "resources": {"tag": {"values": ["PII"]}}}]}}
    with pytest.raises(UnsupportedPolicyFeature, match="tag-based policies.*'tags', 1 policies"):
        PolicyEngine(ServicePolicies.model_validate(payload))


def test_a_linked_tag_service_without_tag_policies_is_accepted():
    payload = {"serviceDef": TRITON_SERVICEDEF, "policies": [], "tagPolicies": {"serviceName": "tags", "policies": []}}
    assert PolicyEngine(ServicePolicies.model_validate(payload)).policy_count == 0


def test_custom_conditions_of_the_service_def_are_refused():
    definition = dict(TRITON_SERVICEDEF, policyConditions=[{"itemId": 1, "name": "ip-range"}])
    conditioned = policy(1, ["m"], allow=[dict(item(["alice"]), conditions=[{"type": "ip-range", "values": ["10.*"]}])])
    with pytest.raises(UnsupportedPolicyFeature):
        engine(conditioned, definition=definition)


def test_security_zones_are_refused():
    payload = {"serviceDef": TRITON_SERVICEDEF, "policies": [], "securityZones": {"z1": {"policies": []}}}
    with pytest.raises(UnsupportedPolicyFeature):
        PolicyEngine(ServicePolicies.model_validate(payload))


def test_data_mask_policies_are_not_access_policies():
    eng = engine(policy(1, ["m"], allow=ALICE, policyType=1))
    assert ask(eng, "m", "infer", "alice").allowed is False


def test_request_is_immutable():
    req = AccessRequest(resource={"model": "m"}, access_type="infer", user="alice")
    with pytest.raises(Exception):
        req.user = "bob"  # type: ignore[misc]


def test_any_access_counts_descendant_denies_when_asked_to():
    eng = engine(policy(1, ["m1"], deny=[item(["alice"])]),
                 policy(2, ["*"], allow=[item(["alice"], accesses=["list"])]))
    strict = AccessRequest(resource={}, access_type="_any", user="alice", ignore_descendant_deny=False)
    assert eng.evaluate(strict, NOW)[:3] == (False, True, 1)


def test_any_access_on_one_model_uses_every_access_type():
    eng = engine(policy(1, ["m1"], allow=[item(["alice"], accesses=["list"])]))
    assert ask(eng, "m1", "", "alice")[:3] == (True, True, 1)
    assert ask(eng, "m2", "", "alice").allowed is False
