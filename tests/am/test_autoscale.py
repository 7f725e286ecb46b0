"""The pure autoscaling policy: behaviours the AM and the dashboard rely on."""
from __future__ import annotations

import random

import pytest

from tarn_am.cli import seeds_policy
from tarn_am.autoscale import (AutoscaleConfig, Autoscaler, FleetObservation, InstanceTelemetry, PolicyState,
                               apply_bounds, decide)

CONFIG = AutoscaleConfig(scale_up=0.8, scale_down=0.2, min_instances=2, max_instances=8,
                         cooldown_s=120, stabilization_s=300, telemetry_interval_s=5, startup_s=60)


def fleet(*loads, now=0.0, gpu=50.0):
    return FleetObservation(tuple(
        InstanceTelemetry(f"i{k}", now, load, queue_time_per_request_us=1000.0, pending_requests=1.0,
                          gpu_utilization_pct=gpu)
        for k, load in enumerate(loads)))


def run_steady(desired, per_instance_of, start, end, state, config=CONFIG):
    """Call decide every telemetry interval; per_instance_of(t, ready) gives each load."""
    decisions = []
    t = start
    while t <= end:
        obs = fleet(*[per_instance_of(t, desired)] * desired, now=t)
        d, state = decide(config, desired, obs, t, state)
        decisions.append((t, d))
        desired = d.desired_count
        t += config.telemetry_interval_s
    return desired, state, decisions


def test_step_reaches_the_needed_count_in_one_decision():
    # Two instances each at 3.2 (x4 the scale-up threshold): 8 needed at 0.8 each.
    d, state = decide(CONFIG, 2, fleet(3.2, 3.2), 0.0, PolicyState())
    assert (d.desired_count, d.add, d.remove, d.action) == (8, 6, 0, "scale_up")
    assert "above scale-up 0.8" in d.reason and d.needed_count == 8


def test_a_step_after_a_steady_spell_asks_for_exactly_the_needed_count():
    state = PolicyState()
    for t in range(0, 120, 5):
        _, state = decide(CONFIG, 2, fleet(0.5, 0.5, now=t), t, state)
    d, _ = decide(CONFIG, 2, fleet(2.0, 2.0, now=120), 120.0, state)  # 4.0 in total: 5 at <= 0.8
    assert (d.desired_count, d.add) == (5, 3)


def test_no_second_request_while_the_new_instances_start():
    _, state = decide(CONFIG, 2, fleet(2.0, 2.0), 0.0, PolicyState())
    for t in range(5, 60, 5):  # the two ready instances still carry all the load
        d, state = decide(CONFIG, 5, fleet(2.0, 2.0, now=t), t, state)
        assert d.action == "hold" and d.desired_count == 5
        assert "waiting for 3 starting instances" in d.reason


def test_scale_up_is_bounded_by_max_instances():
    d, _ = decide(CONFIG, 2, fleet(10.0, 10.0), 0.0, PolicyState())
    assert d.desired_count == 8
    d, _ = decide(CONFIG, 8, fleet(*[3.0] * 8), 5.0, PolicyState())
    assert d.action == "hold" and "max-instances" in d.reason


def test_bounds_move_the_count_even_during_a_cooldown():
    state = PolicyState(last_down_s=0.0, last_up_s=0.0)
    d, _ = decide(CONFIG, 1, fleet(0.5), 10.0, state)
    assert (d.desired_count, d.add) == (2, 1) and "min-instances" in d.reason
    d, _ = decide(CONFIG, 11, fleet(*[0.5] * 11), 10.0, state)
    assert (d.desired_count, d.remove) == (8, 3) and "max-instances" in d.reason


def test_never_below_min_instances_however_idle():
    desired, _, decisions = run_steady(4, lambda t, n: 0.0, 0, 3600, PolicyState())
    assert desired == 2
    assert min(d.desired_count for _, d in decisions) == 2


def test_scale_down_waits_for_the_stabilization_window():
    state = PolicyState(last_up_s=-1000.0)
    for t in range(0, 300, 5):
        d, state = decide(CONFIG, 6, fleet(*[0.1] * 6, now=t), t, state)
        assert d.action == "hold", (t, d.reason)
        assert "stabilization window" in d.reason
    d, state = decide(CONFIG, 6, fleet(*[0.1] * 6, now=300), 300.0, state)
    assert d.action == "scale_down"
    # 6 x 0.1 = 0.6 in total lands at the band's middle (0.5) on 2 instances: drain 4.
    assert (d.desired_count, d.remove) == (2, 4)
    assert "drain 4" in d.reason


def test_one_sample_back_in_the_band_restarts_the_stabilization_window():
    state = PolicyState(last_up_s=-1000.0)
    for t in range(0, 200, 5):
        _, state = decide(CONFIG, 6, fleet(*[0.1] * 6, now=t), t, state)
    _, state = decide(CONFIG, 6, fleet(*[0.3] * 6, now=200), 200.0, state)
    for t in range(205, 700, 5):
        d, state = decide(CONFIG, 6, fleet(*[0.1] * 6, now=t), t, state)
        if d.action == "scale_down":
            assert t == 205 + 300
            break
    else:
        pytest.fail("never scaled down")


def test_scale_down_is_sized_to_the_peak_of_the_window():
    state = PolicyState(last_up_s=-1000.0)
    for t in range(0, 305, 5):
        load = 0.19 if t == 100 else 0.05  # one sample near the band's edge in the window
        d, state = decide(CONFIG, 8, fleet(*[load] * 8, now=t), t, state)
    # the peak 8 x 0.19 = 1.52 needs ceil(1.52 / 0.5) = 4 at the middle of the band
    assert d.action == "scale_down" and d.desired_count == 4


def test_cooldown_between_a_scale_up_and_a_scale_down():
    config = AutoscaleConfig(min_instances=1, max_instances=8, cooldown_s=600, stabilization_s=60)
    d, state = decide(config, 2, fleet(1.6, 1.6), 0.0, PolicyState())
    assert d.desired_count == 4
    for t in range(5, 600, 5):  # load vanishes at once: the window passes but the cooldown holds
        d, state = decide(config, 4, fleet(*[0.01] * 4, now=t), t, state)
        assert d.action == "hold"
    assert "cooldown after the last scale-up" in d.reason
    d, state = decide(config, 4, fleet(*[0.01] * 4, now=600), 600.0, state)
    assert d.action == "scale_down"


def test_cooldown_between_a_scale_down_and_a_scale_up():
    state = PolicyState(last_down_s=100.0)
    d, state = decide(CONFIG, 2, fleet(1.6, 1.6, now=150), 150.0, state)
    assert d.action == "hold" and d.needed_count == 4
    assert "cooldown after the last scale-down, 70s left" in d.reason
    d, _ = decide(CONFIG, 2, fleet(1.6, 1.6, now=220), 220.0, state)
    assert (d.action, d.desired_count) == ("scale_up", 4)


def test_moves_in_the_same_direction_need_no_cooldown():
    d, state = decide(CONFIG, 2, fleet(1.2, 1.2), 0.0, PolicyState())
    assert d.desired_count == 3
    d, _ = decide(CONFIG, 3, fleet(2.4, 2.4, 2.4, now=65), 65.0, state)
    assert d.desired_count == 8


def test_no_flapping_under_noise():
    rng = random.Random(1)
    moves = []
    desired, state = 4, PolicyState()
    for t in range(0, 4 * 3600, 5):  # total 2.0 (0.5 each on 4) with 20 % noise per sample
        obs = fleet(*[max(0.0, 2.0 / desired * (1 + 0.2 * rng.gauss(0, 1))) for _ in range(desired)], now=t)
        d, state = decide(CONFIG, desired, obs, t, state)
        if d.action != "hold":
            moves.append((t, d.action))
        desired = d.desired_count
    directions = [a for _, a in moves]
    flips = sum(1 for a, b in zip(directions, directions[1:]) if a != b)
    assert flips == 0, moves
    assert len(moves) <= 2, moves


def test_an_instance_reporting_nothing_is_not_zero_load():
    silent = InstanceTelemetry("silent", None, None)
    obs = FleetObservation(fleet(1.0, 1.0).instances + (silent,))
    d, _ = decide(CONFIG, 3, obs, 0.0, PolicyState())
    # mean 1.0 over the reporting two, carried by all three ready: 3.0 in total -> 4
    assert d.load_per_instance == pytest.approx(1.0)
    assert d.desired_count == 4
    assert "no telemetry from 1 (silent)" in d.reason


def test_a_stale_sample_counts_as_missing():
    stale = InstanceTelemetry("old", -100.0, 0.0)
    obs = FleetObservation(fleet(0.9, 0.9, now=0).instances + (stale,))
    d, _ = decide(CONFIG, 3, obs, 0.0, PolicyState())
    assert d.load_per_instance == pytest.approx(0.9)  # the stale 0.0 is not averaged in
    assert d.action == "scale_up"


def test_no_scale_down_while_an_instance_reports_nothing():
    state = PolicyState(last_up_s=-1000.0)
    silent = InstanceTelemetry("silent", None, None)
    for t in range(0, 600, 5):
        obs = FleetObservation(fleet(*[0.05] * 5, now=t).instances + (silent,))
        d, state = decide(CONFIG, 6, obs, t, state)
        assert d.action == "hold"
    assert "report nothing" in d.reason


def test_no_telemetry_at_all_holds():
    obs = FleetObservation(tuple(InstanceTelemetry(f"i{k}", None, None) for k in range(3)))
    d, state = decide(CONFIG, 3, obs, 0.0, PolicyState(last_up_s=-1000.0))
    assert d.action == "hold" and "no fresh telemetry from any of the 3" in d.reason
    assert state.low_since_s is None


def test_gpu_unavailable_is_reported_and_does_not_change_the_load():
    with_gpu, _ = decide(CONFIG, 2, fleet(0.5, 0.5, gpu=90.0), 0.0, PolicyState())
    without, _ = decide(CONFIG, 2, fleet(0.5, 0.5, gpu=None), 0.0, PolicyState())
    assert with_gpu.desired_count == without.desired_count == 2
    assert with_gpu.load_per_instance == without.load_per_instance == 0.5
    assert "GPU unreadable on 2" in without.reason and "GPU 90%" in with_gpu.reason


def test_rising_trend_requests_one_instance_ahead_of_the_threshold():
    state = PolicyState()
    desired, ups = 4, []
    for t in range(0, 125, 5):  # total rises 2.0 -> 3.0 over 2 min: 0.5 -> 0.75 each, in band
        total = 2.0 + t / 120
        d, state = decide(CONFIG, desired, fleet(*[total / desired] * desired, now=t), t, state)
        if d.action == "scale_up":
            ups.append((d.load_per_instance, d.add, d.reason))
        desired = d.desired_count
    assert len(ups) == 1, ups
    load, add, reason = ups[0]
    assert load < CONFIG.scale_up and add == 1 and "rising toward scale-up" in reason


def test_a_flat_load_just_under_the_threshold_is_left_alone():
    desired, _, decisions = run_steady(4, lambda t, n: 3.0 / n, 0, 1800, PolicyState())
    assert desired == 4 and all(d.action == "hold" for _, d in decisions)


def test_every_decision_explains_itself():
    _, _, decisions = run_steady(2, lambda t, n: (6.0 if t < 600 else 0.5) / n, 0, 1800, PolicyState())
    assert all(d.reason for _, d in decisions)
    assert {d.action for _, d in decisions} >= {"scale_up", "scale_down", "hold"}


def test_config_rejects_inconsistent_flags():
    with pytest.raises(ValueError, match=r"scale-down \(0.8\) must be lower than scale-up \(0.2\)"):
        AutoscaleConfig(scale_up=0.2, scale_down=0.8)
    with pytest.raises(ValueError, match=r"min-instances \(4\) must not exceed max-instances \(2\)"):
        AutoscaleConfig(min_instances=4, max_instances=2)
    assert AutoscaleConfig.from_seed_flags(scale_up=0.8, scale_down=0.2, min_instances=2, max_instances=8,
                                           cooldown_ms=120000).cooldown_s == 120.0


def test_seeds_policy_moves_one_instance_per_cooldown():
    state = seeds_policy.SeedsState()
    d, state = seeds_policy.decide(CONFIG, 2, fleet(3.2, 3.2), 0.0, state)
    assert (d.desired_count, d.add) == (3, 1)
    d, state = seeds_policy.decide(CONFIG, 3, fleet(3.2, 3.2, now=60), 60.0, state)
    assert d.action == "hold" and "cooldown" in d.reason
    d, state = seeds_policy.decide(CONFIG, 3, fleet(2.1, 2.1, 2.1, now=120), 120.0, state)
    assert d.desired_count == 4


def test_the_am_runs_the_policy_at_most_once_per_telemetry_interval():
    autoscaler = Autoscaler(CONFIG)
    first, autoscaler = autoscaler.step(2, fleet(3.2, 3.2), 0.0)
    assert first.desired_count == 8
    again, same = autoscaler.step(2, fleet(3.2, 3.2, now=4), 4.0)
    assert again is None and same is autoscaler
    later, _ = autoscaler.step(8, fleet(*[0.8] * 8, now=5), 5.0)
    assert later is not None and later.action == "hold"


def test_bounds_clamp_both_ways():
    assert [apply_bounds(n, 2, 8) for n in (0, 2, 5, 8, 11)] == [2, 2, 5, 8, 8]


def served(n, load, rate, pending, now, first=0):
    """``n`` instances serving ``rate`` requests/s with ``pending`` queued (Little's law gives the queue time)."""
    return FleetObservation(tuple(
        InstanceTelemetry(f"i{first + k}", now, load, queue_time_per_request_us=pending / rate * 1e6,
                          pending_requests=pending, gpu_utilization_pct=50.0) for k in range(n)))


def test_served_rate_is_reported_else_read_by_littles_law():
    from tarn_am.arrivals import served_rate
    assert served_rate(InstanceTelemetry("a", 0.0, 0.5, 1e5, 4.0, request_rate_per_s=12.0)) == 12.0
    assert served_rate(InstanceTelemetry("a", 0.0, 0.5, 1e5, 4.0)) == pytest.approx(40.0)
    assert served_rate(InstanceTelemetry("a", 0.0, 0.5)) is None


def test_after_a_burst_the_fleet_drains_only_to_what_its_arrivals_needed():
    state, t = PolicyState(), 0.0
    for t in range(0, 20, 5):  # calm: 25.92 requests/s read 0.72, so 28.8/s is one instance at 0.8
        _, state = decide(CONFIG, 2, served(2, 0.72, 25.92, 1.0, t), t, state)
    # A burst of 155.5 requests/s: each serves 40/s and its queue grows by 37.75/s (5.4 instances' worth).
    for k, t in enumerate(range(20, 35, 5)):
        d, state = decide(CONFIG, 2 if k == 0 else 8, served(2, 6.0, 40.0, 1.0 + 188.75 * (k + 1), t), t, state)
    assert state.arrivals.floor() == 6
    desired, t = 8, 100.0
    while t < 600:  # drained, 8 instances read 0.18: below scale-down; the figure alone would drain to 3
        d, state = decide(CONFIG, desired, served(desired, 0.18, 6.48, 0.07, t), t, state)
        desired, t = d.desired_count, t + 5
    assert desired == 6 and "a burst in the last 1200s needed 6" in d.reason
    while t < 1700:  # no burst for four stabilization windows: the memory lapses, the drain goes on
        d, state = decide(CONFIG, desired, served(desired, 0.15, 5.4, 0.05, t), t, state)
        desired, t = d.desired_count, t + 5
    assert desired < 6 and state.arrivals.floor() == 0


def test_a_backlog_draining_is_no_burst():
    state = PolicyState()
    for t in range(0, 20, 5):
        _, state = decide(CONFIG, 2, served(2, 0.72, 25.92, 1.0, t), t, state)
    for k, t in enumerate(range(20, 45, 5)):  # queue time still high, but the queue shrinks 14/s
        _, state = decide(CONFIG, 2, served(2, 1.0 if k == 0 else 3.0, 40.0, 1000.0 - 70 * k, t), t, state)
    assert state.arrivals.rate_at_scale_up == pytest.approx(28.8) and state.arrivals.floor() == 0


def test_the_policy_reads_each_instances_served_request_rate_summed_over_models():
    from tarn_shared import events as ev
    from tarn_shared.membership import Member
    from tarn_am.fleet_load import observation
    from tarn_am.view import Telemetry
    sample = ev.TelemetrySample(deployment="d", app_id="a", instance_id="i0", interval_s=5, load=0.5, models=[
        ev.ModelSample(name="m1", request_rate_per_s=10.0, pending_requests=2.0),
        ev.ModelSample(name="m2", request_rate_per_s=2.5, pending_requests=1.0)])
    members = {"i0": Member("i0", ev.InstanceState.READY, 1), "i1": Member("i1", ev.InstanceState.READY, 2)}
    obs = observation(members, {"i0": Telemetry(sample, 7.0)}, frozenset())
    assert obs.instances[0].request_rate_per_s == 12.5 and obs.instances[0].pending_requests == 3.0
    assert obs.instances[1].request_rate_per_s is None  # never reported: unknown, not 0
