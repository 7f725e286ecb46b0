"""The staleness decision and what it does to decisions, audit and metrics; no servers."""
from __future__ import annotations

import asyncio
import json
import time

from prometheus_client import CollectorRegistry

from tarn_authz.audit import AuditSink
from tarn_authz.decision_metrics import AuthzMetrics, PolicyCollector
from tarn_authz.decisions import Decider
from tarn_authz.freshness import Freshness, stale_reason
from tarn_authz.identity import Identity
from tarn_authz.registry import ServiceState
from tarn_authz.sources import FolderSource
from tests.authz.support import SERVICE, write_policy_dir

ALICE = Identity(trusted=True, user="alice", groups=frozenset())


def confirmed(at: float) -> Freshness:
    freshness = Freshness()
    freshness.succeeded(at)
    return freshness


def test_policies_within_the_maximum_age_may_be_used():
    assert stale_reason(confirmed(1000.0), now=1060.0, max_age_s=60) is None  # exactly the maximum: still fresh


def test_policies_past_the_maximum_age_are_denied_with_their_age_and_the_refresh_error():
    freshness = confirmed(1000.0)
    freshness.failed("UnsupportedPolicyFeature: security zones are not supported", refused=True, now=1010.0)
    reason = stale_reason(freshness, now=1061.0, max_age_s=60)
    assert reason == ("policies in force are 61 s old, more than the maximum 60 s: denied (fail closed); "
                      "last refresh: UnsupportedPolicyFeature: security zones are not supported")


def test_a_maximum_age_of_zero_is_no_limit():
    assert stale_reason(confirmed(0.0), now=10 ** 9, max_age_s=0) is None


def test_failures_degrade_and_keep_their_first_moment_until_a_success_clears_them():
    freshness = confirmed(1000.0)
    freshness.failed("UnavailableError: down", refused=False, now=1030.0)
    freshness.failed("UnsupportedPolicyFeature: zones", refused=True, now=1060.0)
    assert freshness.degraded and freshness.refused and freshness.failing_since == 1030.0
    assert freshness.age_s(1090.0) == 90.0  # counted from the last confirmation, not the first failure
    freshness.succeeded(1100.0)
    assert not freshness.degraded and not freshness.refused and freshness.failing_since is None
    assert freshness.age_s(1100.0) == 0.0


def _state(tmp_path) -> ServiceState:
    write_policy_dir(tmp_path / "policies", "v2")
    state = ServiceState(name=SERVICE, source=FolderSource(tmp_path / "policies", SERVICE), audit=True)
    state.install(asyncio.run(state.source.fetch(None)))
    return state


def test_decisions_fail_closed_past_the_maximum_age_and_the_denial_is_audited(tmp_path):
    state = _state(tmp_path)
    state.freshness.succeeded(time.time() - 120)
    state.freshness.failed("UnavailableError: Ranger Admin unreachable", refused=False, now=time.time())
    metrics = AuthzMetrics()
    sink = AuditSink(app_id="tarn", metrics=metrics, log_path=tmp_path / "audit.log")
    assert Decider(metrics, sink, max_policy_age_s=0).decide(state, ALICE, "llama-7b", "infer").allowed is True
    answer = Decider(metrics, sink, max_policy_age_s=60).decide(state, ALICE, "llama-7b", "infer")
    assert answer.allowed is False and answer.policy_id == -1 and answer.policy_version == 8
    assert answer.reason.startswith("policies in force are 120 s old, more than the maximum 60 s: denied (fail closed)")
    asyncio.run(sink.flush())
    events = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [(e["result"], e["policy"]) for e in events] == [(1, 1), (0, -1)]
    assert "reason" not in events[0] and events[1]["reason"] == answer.reason


def test_metrics_report_the_age_degraded_and_stale(tmp_path):
    state = _state(tmp_path)
    registry = CollectorRegistry()
    registry.register(PolicyCollector(lambda: {SERVICE: state}, max_policy_age_s=60, clock=lambda: 2000.0))

    def sample(name):
        return registry.get_sample_value(name, {"service": SERVICE})

    state.freshness.succeeded(1990.0)
    assert (sample("tarn_authz_policy_age_seconds"), sample("tarn_authz_policies_degraded"),
            sample("tarn_authz_policies_stale")) == (10.0, 0.0, 0.0)
    state.freshness = confirmed(1900.0)
    state.freshness.failed("MalformedPolicies: not JSON", refused=True, now=1950.0)
    assert (sample("tarn_authz_policy_age_seconds"), sample("tarn_authz_policies_degraded"),
            sample("tarn_authz_policies_stale")) == (100.0, 1.0, 1.0)
