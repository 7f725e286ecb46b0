"""Operators win over the policy (issue 17, item 3): the pure rules of target.py, and the
control loop's autoscale phase holding a paused target."""
from __future__ import annotations

import asyncio

import pytest
import skein

from tarn_am import target as tg
from tarn_am.autoscale import AutoscaleConfig, Autoscaler, FleetObservation, InstanceTelemetry, PolicyState, decide
from tarn_am.bus import RedisBus
from tarn_am.controller import Controller
from tarn_am.settings import AmSettings
from tarn_am.view import FleetView
from tarn_am.yarn import YarnAdapter

CONFIG = AutoscaleConfig(scale_up=0.8, scale_down=0.2, min_instances=1, max_instances=4, cooldown_s=120,
                         stabilization_s=300, telemetry_interval_s=5)


def idle(count: int, now: float) -> FleetObservation:
    return FleetObservation(tuple(InstanceTelemetry(f"i{k}", now, 0.0) for k in range(count)))


def test_a_manual_count_outside_the_bounds_is_refused_naming_them():
    target = tg.Target(2)
    with pytest.raises(tg.Refusal, match=r"count 5 is outside this deployment's bounds 1\.\.4"):
        tg.manual_count(target, 5, 1, 4)
    with pytest.raises(tg.Refusal, match=r"count 0 is outside .* bounds 1\.\.4 .*tarn stop"):
        tg.manual_count(target, 0, 1, 4)
    assert [tg.manual_count(target, n, 1, 4) for n in (1, 4)] == [1, 4]
    assert tg.manual_count(target, 0, 0, 4) == 0  # --min-instances 0 lets an operator empty it


def test_nothing_but_the_stop_moves_a_stopping_target():
    stopping = tg.stopping(tg.Target(3), "tarn stop", 10.0)
    assert (stopping.desired, stopping.paused, stopping.stopping, stopping.policy_moves) == (0, True, True, False)
    over_a_pause = tg.stopping(tg.paused(tg.Target(3), "maintenance", 1.0), "tarn stop", 10.0)
    assert (over_a_pause.paused_reason, over_a_pause.paused_at) == ("tarn stop", 10.0)
    with pytest.raises(tg.Stopping):
        tg.manual_count(stopping, 2, 1, 4)
    with pytest.raises(tg.Stopping):
        tg.resumed(stopping)


def test_a_pause_keeps_its_first_reason_and_time_and_a_resume_clears_it():
    first = tg.paused(tg.Target(2), "maintenance", 100.0)
    again = tg.paused(first, "another", 200.0)
    assert again == first and (first.paused_reason, first.paused_at, first.policy_moves) == ("maintenance", 100.0, False)
    assert tg.resumed(first) == tg.Target(2)
    assert tg.paused(tg.Target(2), "", 1.0).paused_reason == "paused by an operator"


def test_no_autoscale_at_submit_starts_paused_and_can_be_resumed():
    started = tg.initial(1, autoscale=False, now=5.0)
    assert started.paused and started.paused_reason == tg.NO_AUTOSCALE and not started.policy_moves
    assert tg.resumed(started).policy_moves and tg.initial(1, autoscale=True, now=5.0).policy_moves


def test_the_controls_survive_being_stored_and_bad_text_is_no_controls():
    stored = tg.stopping(tg.Target(3), "why", 7.5)
    assert tg.Target(0).with_controls(stored.controls()) == tg.Target(0, True, "why", 7.5, True)
    assert tg.Target(2).with_controls(tg.paused(tg.Target(3), "p", 1.0).controls()) == tg.Target(2, True, "p", 1.0)
    for text in (None, "", "{", "[]", '{"paused": true}', '{"paused":1,"paused_reason":"","paused_at":"x",'
                                                          '"stopping":0}'):
        assert tg.Target(1).with_controls(text) is None, text


def test_a_manual_scale_up_holds_until_a_whole_low_window_after_it():
    # Idle for 400 s at 1: the policy's low run is past its 300 s window.
    state = PolicyState()
    for t in range(0, 400, 5):
        _, state = decide(CONFIG, 1, idle(1, t), t, state)
    # Without a fresh start the operator's 3 is drained back at once...
    drained, _ = decide(CONFIG, 3, idle(3, 400), 400, state)
    assert drained.desired_count < 3
    # ...with it, the policy holds until the idle load has lasted a whole window after the move.
    fresh = tg.fresh_windows(Autoscaler(CONFIG, state)).state
    held, fresh = decide(CONFIG, 3, idle(3, 400), 400, fresh)
    assert held.desired_count == 3 and "stabilization window" in held.reason
    later = fresh
    for t in range(405, 700, 5):
        d, later = decide(CONFIG, 3, idle(3, t), t, later)
        assert d.desired_count == 3, (t, d.reason)
    moved, _ = decide(CONFIG, 3, idle(3, 705), 705, later)
    assert moved.desired_count == 1


def test_the_pause_note_says_what_the_policy_would_do():
    paused = tg.paused(tg.Target(1), "tarn autoscale off", 0.0)
    assert tg.pause_note(paused, "1 → 2: load high") == \
        "autoscaling paused (tarn autoscale off); the policy would: 1 → 2: load high"
    assert tg.pause_note(tg.Target(1), "hold") == "hold"
    assert tg.pause_note(tg.stopping(paused, "tarn stop", 1.0), "x").startswith("stopping")


def test_a_paused_control_loop_computes_the_policy_but_moves_nothing():
    from tarn_shared import events as ev
    settings = AmSettings(deployment="p", slots=["s1=h1", "s2=h2"], redis_url="redis://127.0.0.1:1/0",
                          min_instances=1, max_instances=2)
    # skein's client points nowhere: any attempt to move the target (kv_put) would fail the test.
    yarn = YarnAdapter(skein.ApplicationClient("127.0.0.1:1", "application_1_0001",
                                               security=skein.Security.new_credentials()))
    view = FleetView("p")
    controller = Controller(settings, yarn, RedisBus(settings.redis_url, "p", "application_1_0001"), view,
                            clock=lambda: 1000.0)
    controller.target = tg.paused(controller.target, "tarn autoscale off", 990.0)
    endpoints = ev.Endpoints(host="h1", http_port=1, grpc_port=2, metrics_port=3)
    view.apply_lifecycle("1-0", ev.InstanceReady(deployment="p", app_id="a", instance_id="c1", seq=1,
                                                 models=["m"], endpoints=endpoints), 1000.0)
    view.apply_telemetry(ev.TelemetrySample(deployment="p", app_id="a", instance_id="c1", interval_s=2.0,
                                            load=5.0), 1000.0)
    asyncio.run(controller._autoscale(1000.0))
    assert controller.desired == 1
    assert view.policy_reason.startswith("autoscaling paused (tarn autoscale off); the policy would: 1 → 2")
    assert controller.policy.autoscaler.last_run_s is None  # its windows did not move on
