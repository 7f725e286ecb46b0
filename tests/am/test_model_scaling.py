"""Per-model copies from per-model queue time (model_scaling, KPA-like windows) and its
wiring into a placement round (model_round): pure, no servers."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from tarn_shared import events as ev
from tarn_am.model_commands import CommandBook
from tarn_am.model_copies import ModelPlan, ModelTarget
from tarn_am.model_round import FleetInputs, plan_round
from tarn_am.model_scaling import PANIC_WINDOW_S, STABLE_WINDOW_S, UTILIZATION, CopiesState, ModelReading, \
    decide, readings

TARGET = ModelTarget(min_copies=1, max_copies=10, memory_bytes=1 << 30, target_queue_time_us=100_000)
STEP_S = 2.0
PER_COPY = 10.0  # requests/s a copy serves at its target queue time


def steady(copies: int, arrivals: float, t: float) -> ModelReading:
    """A model whose copies keep up: queue time rises toward the target as they fill."""
    load = arrivals / (copies * PER_COPY)
    return ModelReading(copies, t, arrivals, 100_000 * min(1.0, load) if load > 0.5 else 10_000, 0.0)


def saturated(copies: int, arrivals: float, t: float, pending: float) -> ModelReading:
    return ModelReading(copies, t, copies * PER_COPY * 1.2, 800_000, pending)


def run(readings_at, wanted: int, state: CopiesState = CopiesState()):
    """Decide on each (t, reading); the copies follow each answer, like placement would load them."""
    decisions = []
    for t, reading in readings_at:
        decision, state = decide(TARGET, wanted, reading(wanted, t), t, state)
        decisions.append((t, decision))
        wanted = decision.copies
    return decisions, state, wanted


def test_a_model_under_pressure_gets_the_copies_its_arrivals_need_in_one_decision():
    # 20/s on 2 copies reads exactly the target: a copy's rate at target is learnt (10/s).
    warm, state, copies = run([(t, lambda c, t: steady(c, 20.0, t)) for t in range(0, 120, 2)], 2)
    assert copies == 3 and all(d.copies >= 2 for _, d in warm)  # 20/s at 70 % of 10/s per copy
    # Arrivals jump to 60/s: 3 copies serve 36/s, so the pending queue grows 24/s.
    pending = [0.0]

    def burst(c, t):
        pending.append(pending[-1] + (60.0 - c * PER_COPY * 1.2) * STEP_S)
        return ModelReading(c, t, c * PER_COPY * 1.2, 800_000, pending[-1])

    first, state = decide(TARGET, copies, burst(copies, 120.0), 120.0, state)
    # 60/s arrive and the 48 queued in the last 2 s are drained within the panic window
    assert first.copies == math.ceil((60.0 + 48.0 / PANIC_WINDOW_S) / (UTILIZATION * PER_COPY)) == 10
    assert "under pressure" in first.reason or "panic" in first.reason


def test_an_idle_model_keeps_its_copies_for_a_stable_window_then_sheds_them_in_one_step():
    _, state, copies = run([(t, lambda c, t: steady(c, 45.0, t)) for t in range(0, 120, 2)], 5)
    assert copies == math.ceil(45.0 / (UTILIZATION * 9.0)) == 8  # 5 copies read 9/s each at 90 % of target
    idle = [(t, lambda c, t: ModelReading(c, t, 0.0, 0.0, 0.0)) for t in range(120, 200, 2)]
    decisions, _, copies = run(idle, copies, state)
    before = [d.copies for t, d in decisions if t - 118 < STABLE_WINDOW_S]
    after = [d.copies for t, d in decisions if t - 118 > STABLE_WINDOW_S]
    assert set(before) == {8}  # nothing shed inside the window
    assert after and set(after) == {1}  # one step down to min copies, no staircase


def test_panic_holds_every_copy_until_a_stable_window_passed_without_it():
    _, state, copies = run([(t, lambda c, t: steady(c, 7.0, t)) for t in range(0, 60, 2)], 1)
    pending = [0.0]

    def burst(c, t):
        pending.append(pending[-1] + 40.0 * STEP_S)
        return saturated(c, 60.0, t, pending[-1])

    decisions, state, copies = run([(t, burst) for t in range(60, 70, 2)], copies, state)
    assert any(d.panic for _, d in decisions)
    peak = copies
    # The burst ends: demand falls to one copy's worth, but no copy goes while panic lasts.
    calm, _, _ = run([(t, lambda c, t: steady(c, 5.0, t)) for t in range(70, 200, 2)], copies, state)
    panicking = [d for _, d in calm if d.panic]
    assert panicking and all(d.copies == peak for d in panicking)
    assert calm[-1][1].copies < peak and not calm[-1][1].panic


def test_copies_stay_within_the_models_min_and_max():
    low = ModelTarget(min_copies=2, max_copies=4, memory_bytes=1, target_queue_time_us=100_000)
    _, state = decide(low, 2, ModelReading(2, 0.0, 24.0, 5_000_000, 0.0), 0.0, CopiesState())
    up, _ = decide(low, 2, ModelReading(2, 2.0, 24.0, 5_000_000, 500.0), 2.0, state)
    assert up.copies == 4 and "max copies 4" in up.reason
    state = CopiesState()
    for t in range(0, 200, 2):
        down, state = decide(low, 4, ModelReading(4, float(t), 0.0, 0.0, 0.0), float(t), state)
    assert down.copies == 2 and "min copies 2" in down.reason


def test_without_a_fresh_reading_the_copies_hold():
    stale, _ = decide(TARGET, 3, ModelReading(3, 0.0, 0.0, 0.0, 0.0), 100.0, CopiesState(), stale_after_s=6.0)
    none, _ = decide(TARGET, 3, None, 100.0, CopiesState())
    assert stale.copies == none.copies == 3 and "no fresh reading" in none.reason


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 200), st.floats(0, 3_000_000), st.floats(0, 300)), min_size=1,
                max_size=80), st.integers(1, 10))
def test_whatever_the_readings_copies_stay_in_bounds_and_none_is_shed_early_or_in_panic(rows, start):
    state, wanted = CopiesState(), start
    for k, (rate, queue_us, pending) in enumerate(rows):
        t = k * STEP_S
        decision, state = decide(TARGET, wanted, ModelReading(wanted, t, rate, queue_us, pending), t, state)
        assert TARGET.min_copies <= decision.copies <= TARGET.max_copies
        if decision.copies < wanted:
            assert t >= STABLE_WINDOW_S and not decision.panic
            # Shed only to what every demand of the last stable window fits.
            window = [d for s, d in state.demand if t - s <= STABLE_WINDOW_S]
            assert all(math.ceil(d - 1e-9) <= decision.copies for d in window)
        wanted = decision.copies


def test_a_reading_counts_only_ready_copies_and_weighs_queue_time_by_requests():
    def sample(instance, state, rate, queue_us, pending):
        return ev.TelemetrySample(deployment="d", app_id="a", instance_id=instance, interval_s=2.0, ts=50.0,
                                  models=[ev.ModelSample(name="bert", request_rate_per_s=rate,
                                                         queue_time_per_request_us=queue_us, pending_requests=pending)],
                                  model_states=[ev.ModelOnInstance(name="bert", state=state)])

    got = readings([sample("c1", ev.ModelLoadState.READY, 30.0, 100_000, 2), sample("c2", ev.ModelLoadState.READY,
                    10.0, 500_000, 6), sample("c3", ev.ModelLoadState.LOADING, 0.0, 0.0, 0)])
    assert got["bert"] == ModelReading(2, 50.0, 40.0, 200_000, 8.0, ((30.0, 100_000), (10.0, 500_000)))


def test_a_round_asks_placement_for_the_copies_scaling_wants_and_an_operators_count_wins():
    plan = ModelPlan(models={"bert": TARGET})
    mib = 1 << 20

    def inputs(t, pending):
        sample = ev.TelemetrySample(
            deployment="d", app_id="a", instance_id="c1", interval_s=2.0, ts=t,
            models=[ev.ModelSample(name="bert", request_rate_per_s=12.0, queue_time_per_request_us=900_000,
                                   pending_requests=pending)],
            model_states=[ev.ModelOnInstance(name="bert", state=ev.ModelLoadState.READY, memory_bytes=100 * mib)])
        ids = ("c1", "c2", "c3")
        others = [ev.TelemetrySample(deployment="d", app_id="a", instance_id=i, interval_s=2.0, ts=t) for i in ids[1:]]
        return FleetInputs([sample] + others, {i: f"node-{i}" for i in ids}, {}, set(ids), 3, 1000 * mib)

    first = plan_round(plan, inputs(100.0, 0.0), {}, CommandBook(), 1, 3, 100.0)
    assert first.lines[0].wanted == 2 and [s.instance_id for s in first.sends] == ["c2"]  # no growth seen yet
    second = plan_round(plan, inputs(102.0, 40.0), {}, first.book, 1, 3, 102.0, scaling=first.scaling)
    line = second.lines[0]
    # 12/s served, 20/s more queueing, 40 queued to drain within the panic window: 38.7/s at 70 % of 12/s
    assert line.wanted == 5 and "panic" in line.wanted_reason and line.queue_time_us == 900_000
    assert [s.instance_id for s in second.sends] == ["c3"] and line.missing == 2  # c2's load is in flight
    held = plan_round(plan, inputs(104.0, 80.0), {"bert": 1}, second.book, 1, 3, 104.0, scaling=second.scaling)
    assert held.lines[0].wanted == 1 and held.lines[0].wanted_reason.startswith("set by an operator")


def test_each_models_target_queue_time_comes_from_the_file_over_the_flag_and_a_bad_one_is_one_line(tmp_path):
    from tarn_shared.errors import ConfigError
    from tarn_am.cli.arguments import build_parser, submit_values
    from tarn_am.cli.options import SubmitOptions

    def parse(text, *flags):
        (tmp_path / "models.yaml").write_text(text)
        argv = ["submit", "--model-repository", "/nfs/models", "--runtime", "process", "--placement", "per-model",
                "--models", str(tmp_path / "models.yaml"), *flags]
        return SubmitOptions.parse(submit_values(build_parser().parse_args(argv), {}))

    plan = parse("default: {memory: 1GiB}\nmodels:\n  bert: {queue_ms: 20}\n  resnet:\n",
                 "--model-queue-time", "250").model_plan
    assert plan.models["bert"].target_queue_time_us == 20_000
    assert plan.models["resnet"].target_queue_time_us == 250_000  # the flag's, where the file says nothing
    default = parse("default: {memory: 1GiB}\nmodels:\n  bert:\n").model_plan
    assert default.models["bert"].target_queue_time_us == 100_000  # the node-agent's target
    with pytest.raises(ConfigError, match=r"queue_ms: Input should be greater than 0"):
        parse("default: {memory: 1GiB}\nmodels:\n  bert: {queue_ms: 0}\n")


def test_a_shed_copy_is_the_one_still_loading_so_the_serving_copy_stays():
    from tarn_am.model_placement import FleetBounds, InstanceMemory, ModelDemand, decide as place

    gib = 1 << 30
    serving = InstanceMemory("c1", "n1", 10 * gib, 6 * gib, frozenset({"bert"}))  # the fuller one
    loading = InstanceMemory("c2", "n2", 10 * gib, 2 * gib, frozenset({"bert"}), loading=frozenset({"bert"}))
    placement = place([ModelDemand("bert", 2 * gib, 1)], [serving, loading], FleetBounds(1, 4, 10 * gib))
    assert [(m.instance_id, m.model) for m in placement.unloads] == [("c2", "bert")]


def test_a_min_zero_model_starts_with_one_copy_and_sheds_it_after_an_idle_stable_window():
    plan = ModelPlan(models={"cold": ModelTarget(min_copies=0, max_copies=1, memory_bytes=1 << 20)})

    def inputs(t, loaded, acks=None):
        states = [ev.ModelOnInstance(name="cold", state=ev.ModelLoadState.READY, memory_bytes=1 << 20)] if loaded else []
        models = [ev.ModelSample(name="cold", request_rate_per_s=0.0, queue_time_per_request_us=0.0,
                                 pending_requests=0)] if loaded else []
        sample = ev.TelemetrySample(deployment="d", app_id="a", instance_id="c1", interval_s=1.0, ts=t,
                                    models=models, model_states=states)
        return FleetInputs([sample], {"c1": "n1"}, acks or {}, {"c1"}, 1, 100 << 20)

    first = plan_round(plan, inputs(100.0, False), {}, CommandBook(), 1, 1, 100.0)
    assert first.lines[0].wanted == 1 and [(s.instance_id, s.kind) for s in first.sends] == [("c1", "load")]
    scaling, book = first.scaling, first.book
    loaded = {first.sends[0].command_id: ev.CommandAck(
        deployment="d", app_id="a", container_id="c1", command_id=first.sends[0].command_id,
        command_type="command.load_model", status=ev.AckStatus.DONE)}
    for t in range(101, 101 + int(STABLE_WINDOW_S), 5):  # idle, but not yet for a whole window
        held = plan_round(plan, inputs(float(t), True, loaded), {}, book, 1, 1, float(t), scaling=scaling)
        scaling, book = held.scaling, held.book
        assert held.lines[0].wanted == 1, held.lines[0].wanted_reason
    shed = plan_round(plan, inputs(102.0 + STABLE_WINDOW_S, True, loaded), {}, book, 1, 1, 102.0 + STABLE_WINDOW_S,
                      scaling=scaling)
    assert shed.lines[0].wanted == 0 and [(s.instance_id, s.kind) for s in shed.sends] == [("c1", "unload")]


def test_no_copy_is_shed_on_the_rate_a_saturated_copy_managed():
    # Saturated readings say a copy manages at most 12/s at its target: an upper bound on its rate.
    over = [(t, lambda c, t: ModelReading(c, t, c * 12.0, 300_000, 0.0)) for t in range(0, 20, 2)]
    _, state, copies = run(over, 10)
    # 60/s on 10 copies, queue at 30 % of target: shedding on 12/s would keep ceil(60 / 8.4) = 8.
    calm = [(t, lambda c, t: ModelReading(c, t, 60.0, 30_000, 0.0)) for t in range(20, 200, 2)]
    decisions, _, copies = run(calm, copies, state)
    assert copies >= 10 and all("shed" not in d.reason for _, d in decisions)


def test_a_model_whose_load_fell_sheds_without_a_near_target_reading():
    # 9 copies at 11/s each, queue at 20 % of target: no reading near the target, none over it.
    busy = [(t, lambda c, t: ModelReading(c, t, 99.0, 20_000, 0.0)) for t in range(0, 120, 2)]
    _, state, copies = run(busy, 9)
    assert copies == 9
    quiet = [(t, lambda c, t: ModelReading(c, t, 6.0, 100, 0.0)) for t in range(120, 260, 2)]
    _, _, copies = run(quiet, copies, state)
    assert copies == 1  # 6/s is under one copy's 11/s at 70 %: one step down after a stable window


def test_no_copy_is_shed_on_the_rate_of_copies_draining_a_backlog():
    # 10 copies drain a backlog: 100/s served while only 40/s arrive (the queue falls 60/s).
    pending = [3000.0]  # lasts the 40 s of the drain

    def draining(c, t):
        pending.append(max(0.0, pending[-1] - 60.0 * STEP_S))
        return ModelReading(c, t, 100.0, 30_000, pending[-1])

    _, state, copies = run([(t, draining) for t in range(0, 40, 2)], 10)
    # Then 40/s steady, 4/s a copy: shedding on the 10/s of the drain would keep ceil(40 / 7) = 6.
    steady = [(t, lambda c, t: ModelReading(c, t, 40.0, 30_000, 0.0)) for t in range(40, 200, 2)]
    decisions, _, copies = run(steady, copies, state)
    assert copies == 10 and all("shed" not in d.reason for _, d in decisions)
