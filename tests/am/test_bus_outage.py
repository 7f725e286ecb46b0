"""Silence is not death when the silence is ours: while tarn-am's own bus is down, reconnecting
or behind, no instance is distrusted; silence counts only from when the bus was healthy again."""
from __future__ import annotations

from tarn_shared.consumer import ConsumerHealth
from tarn_shared.events import InstanceState

from tarn_am.bus_health import BusHealth, bus_health, silent_since
from tarn_am.containers import ContainerLost, ObservedContainer, ReleaseContainer
from tarn_am.reconcile import FleetState, Observation, decide
from tests.am.test_reconcile import SLOTS, TIMINGS, member, running  # heartbeat 20 s, start 50 s

DOWN = BusHealth(False)


def fleet():
    return (running("nvidia-nm1", cid="c1"), running("nvidia-nm2", cid="c2"))


def ready():
    return {"c1": member("c1"), "c2": member("c2")}


def rounds(observe, start: float, end: float, state: FleetState, step: float = 1.0, desired: int = 2):
    """Run the decision every ``step`` seconds; return every action taken and the last state."""
    actions, now = [], start
    while now <= end:
        decision, state = decide(desired, SLOTS, observe(now), now, state, TIMINGS)
        actions += decision.actions
        now += step
    return actions, state


def test_bus_down_for_60_s_releases_nothing():
    # Last heartbeats at 0; Redis gone from 1 s to 61 s.
    observe = lambda now: Observation(fleet(), ready(), {"c1": 0.0, "c2": 0.0}, bus=DOWN)  # noqa: E731
    actions, state = rounds(observe, 1.0, 61.0, FleetState())
    assert actions == []
    assert state.failures == {}


def test_bus_back_and_agents_heartbeating_again_releases_nothing():
    state = rounds(lambda now: Observation(fleet(), ready(), {"c1": 0.0, "c2": 0.0}, bus=DOWN), 1, 61,
                   FleetState())[1]
    # Back at 62: the first heartbeats come within the agents' interval (2 s here).
    back = BusHealth(True, since=62.0)
    beats = lambda now: {"c1": 0.0 if now < 64 else now, "c2": 0.0 if now < 63 else now}  # noqa: E731
    actions, state = rounds(lambda now: Observation(fleet(), ready(), beats(now), bus=back), 62, 120, state)
    assert actions == []


def test_one_instance_really_silent_after_the_bus_recovered_is_the_only_one_released():
    back = BusHealth(True, since=62.0)
    beats = lambda now: {"c1": 0.0, "c2": now}  # noqa: E731  c1 never heard from again
    observe = lambda now: Observation(fleet(), ready(), beats(now), bus=back)  # noqa: E731
    actions, _ = rounds(observe, 62, 82, FleetState())
    assert actions == []  # 20 s after the bus came back: not yet more than the timeout
    actions, _ = rounds(observe, 83, 83, FleetState())
    released = [a for a in actions if isinstance(a, ReleaseContainer)]
    assert [a.instance_id for a in released] == ["c1"]
    assert [a.instance_id for a in actions if isinstance(a, ContainerLost)] == ["c1"]


def test_yarn_completion_and_stop_events_still_count_while_the_bus_is_down():
    done = ObservedContainer("nvidia-nm1_0", "nvidia-nm1", "failed", "c1", "nm1", started_at=0.0,
                             exit_message="exit 137")
    members = {"c1": member("c1"), "c2": member("c2", InstanceState.STOPPED)}
    decision, _ = decide(2, SLOTS, Observation((done, fleet()[1]), members, {}, bus=DOWN), 30.0, FleetState(),
                         TIMINGS)
    assert [a.instance_id for a in decision.of_type(ContainerLost)] == ["c1", "c2"]
    assert [a.instance_id for a in decision.of_type(ReleaseContainer)] == ["c2"]
    assert decision.blocked is not None and "restart backoff" in decision.blocked.reason  # replaced as usual


def test_the_start_timeout_does_not_fire_for_readiness_the_outage_kept_from_us():
    starting = (running("nvidia-nm1", cid="c1", started=0.0),)
    members = {"c1": member("c1", InstanceState.STARTING)}
    down = lambda now: Observation(starting, members, bus=DOWN)  # noqa: E731
    assert rounds(down, 1, 100, FleetState(), step=5, desired=1)[0] == []
    back = lambda now: Observation(starting, members, bus=BusHealth(True, since=100.0))  # noqa: E731
    assert rounds(back, 100, 150, FleetState(), step=5, desired=1)[0] == []
    decision, _ = decide(1, SLOTS, back(151), 151.0, FleetState(), TIMINGS)
    assert "not ready" in decision.of_type(ReleaseContainer)[0].reason


def test_a_healthy_bus_without_a_since_keeps_the_old_rules():
    observed = Observation((running("nvidia-nm1", cid="c1"),), {"c1": member("c1")}, {"c1": 0.0})
    decision, _ = decide(1, SLOTS, observed, 30.0, FleetState(), TIMINGS)
    assert "no heartbeat" in decision.of_type(ReleaseContainer)[0].reason


def ok(since: float = 10.0, last_ok: float = 99.0) -> ConsumerHealth:
    return ConsumerHealth(healthy=True, healthy_since=since, last_ok=last_ok)


def test_the_bus_is_healthy_only_when_every_consumer_is_connected_caught_up_and_recent():
    assert bus_health([ok(10), ok(40)], 100.0, None) == BusHealth(True, 40.0)
    assert bus_health([ok(10), ok(40)], 100.0, last_bad_at=70.0) == BusHealth(True, 70.0)
    assert not bus_health([], 100.0, None).healthy
    assert not bus_health([ok(), ConsumerHealth()], 100.0, None).healthy  # one never connected
    assert not bus_health([ok(), ConsumerHealth(healthy=False, last_ok=99.0)], 100.0, None).healthy
    assert not bus_health([ok(last_ok=90.0)], 100.0, None).healthy  # a read hangs: Redis froze


def test_silence_counts_from_the_later_of_the_last_word_and_the_bus_recovering():
    assert silent_since(5.0, BusHealth(True, 60.0)) == 60.0
    assert silent_since(70.0, BusHealth(True, 60.0)) == 70.0
    assert silent_since(5.0, BusHealth(True)) == 5.0
