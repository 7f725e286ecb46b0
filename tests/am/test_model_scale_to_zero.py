"""Scale a model to zero and back (issue 16, item 6), the AM's pure side: a ``min: 0`` model
idle for its window sheds its last copy through the real scaling and placement, and a gateway's
demand (ModelDemanded) for a model at 0 copies asks for one copy in one decision."""
from __future__ import annotations

import pytest

from tarn_shared import events as ev
from tarn_am.model_commands import CommandBook
from tarn_am.model_copies import ModelPlan, ModelTarget
from tarn_am.model_round import FleetInputs, plan_round
from tarn_am.model_scaling import DEMAND_FRESH_S, CopiesDecision, CopiesState, ModelReading, decide, wake
from tarn_am.model_demand import DEMAND_REPLAY_S, MAX_DEMANDED, ModelDemands

MIB = 1 << 20
ZERO = ModelTarget(min_copies=0, max_copies=2, memory_bytes=64 * MIB, idle_s=5.0)


def idle_reading(t: float) -> ModelReading:
    return ModelReading(1, t, 0.0, 0.0, 0.0)


def test_a_min_zero_model_idle_for_its_window_sheds_its_last_copy_and_not_before():
    state, copies, answers = CopiesState(), 1, []
    for t in range(100, 112):
        decision, state = decide(ZERO, copies, idle_reading(float(t)), float(t), state)
        answers.append((t, decision.copies, decision.reason))
        copies = decision.copies
    assert all(c == 1 for t, c, _ in answers if t - 100 < 5)  # inside the idle window: kept
    shed = [(t, why) for t, c, why in answers if c == 0]
    assert shed and shed[0][0] - 100 <= 6 and "scale to zero" in shed[0][1], answers


def test_a_model_with_min_one_or_with_traffic_never_goes_to_zero():
    state, copies = CopiesState(), 1
    for t in range(0, 30):
        decision, state = decide(ZERO, copies, ModelReading(1, float(t), 3.0, 10_000.0, 0.0), float(t), state)
        copies = decision.copies
    assert copies == 1, decision.reason
    kept = ModelTarget(min_copies=1, max_copies=2, memory_bytes=64 * MIB)
    state, copies = CopiesState(), 1
    for t in range(0, 200, 2):
        decision, state = decide(kept, copies, idle_reading(float(t)), float(t), state)
        copies = decision.copies
    assert copies == 1


def test_a_fresh_demand_at_zero_copies_wants_one_copy_once():
    at_zero = CopiesDecision(0, "hold")
    woken, state = wake(ZERO, at_zero, 100.0, 101.0, CopiesState())
    assert woken.copies == 1 and "waits at the gateway" in woken.reason
    again, state = wake(ZERO, at_zero, 100.0, 150.0, state)  # the same demand taken twice wakes nothing
    assert again.copies == 0
    stale, _ = wake(ZERO, at_zero, 100.0, 100.0 + DEMAND_FRESH_S + 1, CopiesState())
    assert stale.copies == 0


def test_a_demand_sent_while_the_copy_loaded_cannot_bring_it_back_after_the_next_idle_shed():
    loading = CopiesDecision(1, "hold")
    _, state = wake(ZERO, loading, 104.0, 105.0, CopiesState(demand_seen_s=100.0))
    shed = CopiesDecision(0, "scale to zero")
    after, _ = wake(ZERO, shed, 104.0, 112.0, state)
    assert after.copies == 0


def _sample(t: float, loaded: bool) -> ev.TelemetrySample:
    states = [ev.ModelOnInstance(name="cold", state=ev.ModelLoadState.READY, memory_bytes=64 * MIB)] if loaded else []
    models = [ev.ModelSample(name="cold", request_rate_per_s=0.0, queue_time_per_request_us=0.0,
                             pending_requests=0.0)] if loaded else []
    return ev.TelemetrySample(deployment="d", app_id="a", instance_id="c1", interval_s=1.0, ts=t, models=models,
                              model_states=states)


def test_the_real_round_unloads_an_idle_model_everywhere_and_loads_it_again_on_demand():
    plan = ModelPlan(models={"cold": ZERO})

    def inputs(t, loaded, demanded=None):
        return FleetInputs([_sample(t, loaded)], {"c1": "n1"}, {}, {"c1"}, 1, 1000 * MIB,
                           demanded=demanded or {})

    book, scaling, unloads = CommandBook(), None, []
    from tarn_am.model_scaling import ScalingMemory
    scaling = ScalingMemory(wanted={"cold": 1})
    for t in range(100, 110):
        decided = plan_round(plan, inputs(float(t), True), {}, book, 1, 2, float(t), scaling=scaling)
        book, scaling = decided.book, decided.scaling
        unloads += [(s.instance_id, s.model) for s in decided.sends if s.kind == "unload"]
    assert decided.lines[0].wanted == 0 and unloads[:1] == [("c1", "cold")]
    assert decided.desired == 1  # the instance stays (min instances); only the model went
    quiet = plan_round(plan, inputs(120.0, False), {}, CommandBook(), 1, 2, 120.0, scaling=scaling)
    assert quiet.lines[0].wanted == 0 and not [s for s in quiet.sends if s.kind == "load"]
    woken = plan_round(plan, inputs(121.0, False, {"cold": 120.5}), {}, CommandBook(), 1, 2, 121.0,
                       scaling=quiet.scaling)
    assert woken.lines[0].wanted == 1 and [(s.instance_id, s.model, s.kind) for s in woken.sends] == \
        [("c1", "cold", "load")], woken.lines[0]
    unknown = plan_round(plan, inputs(122.0, False, {"other": 121.5}), {}, CommandBook(), 1, 2, 122.0,
                         scaling=quiet.scaling)
    assert not unknown.sends and [line.name for line in unknown.lines] == ["cold"]


def test_gateway_demands_stay_bounded_and_a_replayed_one_is_no_demand():
    demands = ModelDemands()
    demands.apply(ev.ModelDemanded(deployment="d", model="cold", ts=1000.0), 1001.0)
    demands.apply(ev.ModelUnrouted(deployment="d", app_id="a", instance_id="c", seq=1, model="x", open_requests=0),
                  1001.0)
    assert demands.received == {"cold": 1001.0}
    demands.apply(ev.ModelDemanded(deployment="d", model="old", ts=1.0), 1.0 + DEMAND_REPLAY_S + 5)
    assert "old" not in demands.received
    for n in range(MAX_DEMANDED + 10):
        demands.apply(ev.ModelDemanded(deployment="d", model=f"m{n}", ts=2000.0 + n), 2000.0 + n)
    assert len(demands.received) == MAX_DEMANDED and f"m{MAX_DEMANDED + 9}" in demands.received
    assert "cold" not in demands.received  # the oldest made room


def test_idle_s_in_the_models_file_needs_min_zero_and_a_bounded_window(tmp_path):
    from tarn_shared.errors import ConfigError
    from tarn_am.cli.arguments import build_parser, submit_values
    from tarn_am.cli.options import SubmitOptions

    def parse(text):
        (tmp_path / "models.yaml").write_text(text)
        argv = ["submit", "--model-repository", "/nfs/models", "--runtime", "process", "--placement", "per-model",
                "--models", str(tmp_path / "models.yaml")]
        return SubmitOptions.parse(submit_values(build_parser().parse_args(argv), {}))

    plan = parse("default: {memory: 1GiB, idle_s: 20}\nmodels:\n  cold: {min: 0}\n  warm: {min: 1}\n").model_plan
    assert plan.models["cold"].idle_s == 20 and plan.models["warm"].idle_s is None
    with pytest.raises(ConfigError, match=r"model 'warm': idle_s \(5\) .* needs min: 0"):
        parse("default: {memory: 1GiB}\nmodels:\n  warm: {min: 1, idle_s: 5}\n")
    with pytest.raises(ConfigError, match=r"idle_s: Input should be less than or equal to 60"):
        parse("default: {memory: 1GiB}\nmodels:\n  cold: {min: 0, idle_s: 600}\n")
