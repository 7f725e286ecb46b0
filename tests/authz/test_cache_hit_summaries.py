"""Decisions a gateway served from its cache, audited as Ranger-style summaries
(Decider.summarise); no servers."""
from __future__ import annotations

import asyncio
import json
import time

from tarn_authz.audit import AuditSink
from tarn_authz.decision_metrics import AuthzMetrics
from tarn_authz.decisions import CacheHits, Decider
from tarn_authz.identity import Identity
from tests.authz.test_freshness import _state

ALICE = Identity(trusted=True, user="alice", groups=frozenset())


def _summarise(tmp_path, hits: CacheHits, audit: bool = True) -> tuple:
    state = _state(tmp_path)
    state.audit = audit
    metrics = AuthzMetrics()
    sink = AuditSink(app_id="tarn", metrics=metrics, log_path=tmp_path / "audit.log")
    recorded = Decider(metrics, sink).summarise(state, ALICE, hits)
    asyncio.run(sink.flush())
    log = tmp_path / "audit.log"
    return recorded, [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_cache_hits_become_one_event_with_their_count_duration_and_first_moment(tmp_path):
    first = 1_764_620_000.0  # 2025-12-01 20:13:20 UTC
    recorded, events = _summarise(tmp_path, CacheHits("llama-7b", "infer", True, "10.1.2.3", 42, first, first + 1.5))
    assert recorded
    assert [(e["reqUser"], e["resource"], e["result"], e["policy"], e["cliIP"], e["event_count"], e["event_dur_ms"],
             e["evtTime"], e["additional_info"]) for e in events] == \
        [("alice", "llama-7b", 1, 1, "10.1.2.3", 42, 1500, "2025-12-01 20:13:20.000", '{"served_from":"gateway cache"}')]
    assert "reason" not in events[0]


def test_the_gateways_decision_is_recorded_with_a_reason_when_authz_now_decides_otherwise(tmp_path):
    now = time.time()
    recorded, events = _summarise(tmp_path, CacheHits("llama-7b", "infer", False, None, 3, now, now))
    assert recorded
    assert [(e["result"], e["event_count"], e["reason"]) for e in events] == \
        [(0, 3, "served from the gateway cache; authz now decides allow")]


def test_hits_on_a_service_not_audited_are_not_recorded(tmp_path):
    now = time.time()
    recorded, events = _summarise(tmp_path, CacheHits("llama-7b", "infer", True, None, 3, now, now), audit=False)
    assert not recorded and events == []
