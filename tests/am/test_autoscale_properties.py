"""Properties of both policies over random telemetry sequences (hypothesis)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tarn_am import autoscale
from tarn_am.cli import seeds_policy
from tarn_am.autoscale import AutoscaleConfig, FleetObservation, InstanceTelemetry

configs = st.builds(
    lambda down, gap, lo, span, cooldown, window: AutoscaleConfig(
        scale_down=down, scale_up=down + gap, min_instances=lo, max_instances=lo + span,
        cooldown_s=cooldown, stabilization_s=window),
    st.floats(0.05, 0.5), st.floats(0.1, 1.0), st.integers(1, 4), st.integers(0, 8),
    st.sampled_from([0.0, 30.0, 120.0]), st.sampled_from([0.0, 60.0, 300.0]))

# one instance's sample: fresh, stale, never reported, or no load figure; GPU or not; with or
# without queue time (us) and pending requests (the arrivals' reading of bursts)
samples = st.tuples(
    st.sampled_from(["fresh", "fresh", "fresh", "stale", "never", "no-load"]),
    st.floats(0.0, 6.0), st.one_of(st.none(), st.floats(0.0, 100.0)),
    st.one_of(st.none(), st.floats(0.0, 2e6)), st.one_of(st.none(), st.floats(0.0, 500.0)))

steps = st.lists(st.tuples(st.integers(1, 30), st.lists(samples, max_size=12), st.integers(-2, 2)),
                 min_size=1, max_size=40)


def observation(now, drawn):
    out = []
    for k, (kind, load, gpu, queue_us, pending) in enumerate(drawn):
        sampled = {"fresh": now, "stale": now - 1000.0, "never": None, "no-load": now}[kind]
        out.append(InstanceTelemetry(f"i{k}", sampled, None if kind == "no-load" else load,
                                     queue_time_per_request_us=queue_us, pending_requests=pending,
                                     gpu_utilization_pct=gpu))
    return FleetObservation(tuple(out))


def replay(module, config, start, script):
    state = module.PolicyState() if module is autoscale else module.SeedsState()
    desired, now, out = start, 0.0, []
    for dt, drawn, drift in script:
        now += dt
        desired = max(0, desired + drift)  # an operator's /scale or lost containers move it too
        decision, state = module.decide(config, desired, observation(now, drawn), now, state)
        out.append((desired, decision, state))
        desired = decision.desired_count
    return out


@settings(max_examples=200, deadline=None)
@given(configs, st.integers(0, 15), steps, st.sampled_from([autoscale, seeds_policy]))
def test_bounds_are_always_respected(config, start, script, module):
    for desired, decision, _ in replay(module, config, start, script):
        assert config.min_instances <= decision.desired_count <= config.max_instances
        assert decision.desired_count == desired + decision.add - decision.remove
        assert not (decision.add and decision.remove)
        assert decision.reason


@settings(max_examples=100, deadline=None)
@given(configs, st.integers(0, 15), steps, st.sampled_from([autoscale, seeds_policy]))
def test_decisions_are_deterministic(config, start, script, module):
    assert replay(module, config, start, script) == replay(module, config, start, script)


@settings(max_examples=200, deadline=None)
@given(configs, st.integers(1, 12), steps)
def test_opposite_moves_are_a_cooldown_apart(config, start, script):
    moves = []
    now = 0.0
    for (dt, _, _), (desired, decision, _) in zip(script, replay(autoscale, config, start, script)):
        now += dt
        inside = config.min_instances <= desired <= config.max_instances
        if decision.action != "hold" and inside:  # bound corrections are exempt by design
            moves.append((now, decision.action))
    for (t1, a1), (t2, a2) in zip(moves, moves[1:]):
        if a1 != a2:
            assert t2 - t1 >= config.cooldown_s - 1e-6


@settings(max_examples=200, deadline=None)
@given(configs, st.integers(1, 12), st.floats(0.0, 6.0), st.integers(1, 12))
def test_missing_telemetry_never_lowers_the_count(config, desired, load, silent):
    """Adding silent instances to a fleet never makes the policy want fewer than without them."""
    desired = max(config.min_instances, min(config.max_instances, desired))
    reporting = [InstanceTelemetry(f"r{k}", 0.0, load) for k in range(desired)]
    quiet = [InstanceTelemetry(f"s{k}", None, None) for k in range(silent)]
    state = autoscale.PolicyState(low_since_s=-10_000.0, low_peak_total=0.0, last_up_s=-10_000.0)
    alone, _ = autoscale.decide(config, desired, FleetObservation(tuple(reporting)), 0.0, state)
    mixed, _ = autoscale.decide(config, desired, FleetObservation(tuple(reporting + quiet)), 0.0, state)
    assert mixed.remove == 0 or mixed.desired_count >= alone.desired_count
