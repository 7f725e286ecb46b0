"""cold_start.py, pure: which cold-start reports become a ModelDemanded, and that a flood of
reports or model names stays bounded."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from tarn_gateway_sync.cold_start import ColdStartReport, DemandGate

OWNERS = {"triton_backend": "d1"}


def knows(deployment: str, backend: str, model: str) -> bool:
    return (deployment, backend, model) == ("d1", "triton_backend", "identity")


def test_a_demand_goes_out_once_per_interval_per_model():
    gate = DemandGate(every_s=2.0)
    outcomes = [gate.judge("triton_backend", "identity", OWNERS, knows, t).outcome for t in (0.0, 0.5, 1.9, 2.0)]
    assert outcomes == ["published", "throttled", "throttled", "published"]


def test_an_unknown_backend_or_model_is_refused_with_a_reason():
    gate = DemandGate()
    stranger = gate.judge("other_backend", "identity", OWNERS, knows, 0.0)
    assert stranger.outcome == "refused" and "not routed per model" in stranger.message
    unknown = gate.judge("triton_backend", "bert", OWNERS, knows, 0.0)
    assert unknown.outcome == "refused" and "'bert' is not one deployment 'd1' routes" in unknown.message


def test_a_failed_publish_may_be_retried_at_once():
    gate = DemandGate(every_s=2.0)
    assert gate.judge("triton_backend", "identity", OWNERS, knows, 0.0).outcome == "published"
    gate.unsent("d1", "identity")
    assert gate.judge("triton_backend", "identity", OWNERS, knows, 0.1).outcome == "published"


def test_the_table_of_demands_stays_bounded_under_a_flood_of_names():
    gate = DemandGate(every_s=2.0, max_tracked=3)
    anything = lambda d, b, m: True  # noqa: E731
    first = [gate.judge("triton_backend", f"m{n}", OWNERS, anything, 0.0).outcome for n in range(5)]
    assert first == ["published"] * 3 + ["throttled"] * 2
    assert gate.judge("triton_backend", "m9", OWNERS, anything, 5.0).outcome == "published"  # old ones forgotten
    assert len(gate._sent) <= 3


@pytest.mark.parametrize("field,value", [("model", "a b"), ("model", "x\n"), ("model", "../etc"), ("model", ""),
                                         ("backend", "b;del"), ("event", "boom"), ("waited_ms", -1)])
def test_a_report_with_a_hostile_field_is_refused(field, value):
    report = {"backend": "triton_backend", "model": "identity", "event": "held", field: value}
    with pytest.raises(ValidationError):
        ColdStartReport.model_validate(report)


def test_a_model_that_may_scale_to_zero_keeps_a_slot_without_a_copy_but_never_takes_one_from_a_held_model():
    from tarn_gateway_sync.model_routes import assign_slots

    slots = ("b_model_0", "b_model_1")
    wanted, overflow = assign_slots(set(), {}, slots, cold=["cold"])
    assert wanted == {"cold": "b_model_0"} and overflow == ()  # known before its first copy
    wanted, overflow = assign_slots({"a", "b"}, {"cold": "b_model_0"}, slots, cold=["cold"])
    assert set(wanted) == {"a", "b"} and overflow == ("cold",)  # held models win the slots
    wanted, _ = assign_slots({"a"}, {}, slots, cold=["bad name", "x\n"])
    assert wanted == {"a": "b_model_0"}  # hostile names from a record never reach the map
