"""The reconcile decision: placement, restarts under backoff, crash loops, drains, takeover."""
from __future__ import annotations

from tarn_shared.events import Endpoints, InstanceState
from tarn_shared.membership import Member

from tarn_am.containers import ContainerLost, ObservedContainer, ReleaseContainer, SendDrain, Slot, StartContainer
from tarn_am.reconcile import (Blocked, FleetState, Observation, ReconcileTimings, decide, is_crash_looping,
                               restart_delay_s, takeover_state)

SLOTS = [Slot("nvidia-nm1", "nm1"), Slot("nvidia-nm2", "nm2")]
TIMINGS = ReconcileTimings(restart_backoff_initial_s=2, restart_backoff_max_s=16, crash_loop_failures=3,
                           crash_loop_window_s=100, drain_timeout_s=10, drain_grace_s=5, command_resend_s=2,
                           start_timeout_s=50, heartbeat_timeout_s=20)


def running(service: str, n: int = 0, cid: str = "", started: float = 0.0) -> ObservedContainer:
    return ObservedContainer(f"{service}_{n}", service, "running", cid or f"container_{service}_{n}",
                             service.split("-")[1], started_at=started)


def member(cid: str, state: InstanceState = InstanceState.READY, seq: int = 1) -> Member:
    return Member(cid, state, seq, Endpoints(host="nm", http_port=8000))


def test_scale_up_places_one_container_per_node():
    decision, _ = decide(2, SLOTS, Observation(()), 0.0, FleetState(), TIMINGS)
    starts = decision.of_type(StartContainer)
    assert sorted(s.host for s in starts) == ["nm1", "nm2"]
    assert decision.blocked is None


def test_a_third_instance_on_two_nodes_is_blocked_by_anti_affinity():
    observed = Observation((running("nvidia-nm1"), running("nvidia-nm2")))
    decision, _ = decide(3, SLOTS, observed, 0.0, FleetState(), TIMINGS)
    assert decision.of_type(StartContainer) == []
    assert decision.blocked == Blocked(1, decision.blocked.reason)
    assert "anti-affinity" in decision.blocked.reason


def test_a_requested_container_counts_so_nothing_is_asked_twice():
    requested = ObservedContainer("nvidia-nm1_0", "nvidia-nm1", "requested")
    decision, _ = decide(1, SLOTS, Observation((requested,)), 0.0, FleetState(), TIMINGS)
    assert decision.actions == ()


def test_a_failed_container_is_replaced_after_backoff():
    failed = ObservedContainer("nvidia-nm1_0", "nvidia-nm1", "failed", "c1", "nm1", exit_message="exit 1")
    state = FleetState()
    decision, state = decide(2, SLOTS, Observation((failed, running("nvidia-nm2", started=95))), 100.0, state, TIMINGS)
    lost = decision.of_type(ContainerLost)
    assert [l.instance_id for l in lost] == ["c1"]
    assert decision.of_type(StartContainer) == []  # backing off: 2 s
    assert "backoff" in decision.blocked.reason
    decision, state = decide(2, SLOTS, Observation((failed, running("nvidia-nm2", started=95))), 102.5, state, TIMINGS)
    assert [s.service for s in decision.of_type(StartContainer)] == ["nvidia-nm1"]
    assert decision.of_type(ContainerLost) == []  # the failure is counted once
    assert state.restarts == 1


def test_restart_delay_doubles_and_is_capped():
    assert [restart_delay_s(n, TIMINGS) for n in range(0, 6)] == [0, 2, 4, 8, 16, 16]


def test_repeated_failures_mark_the_node_crash_looping_and_pause_restarts():
    state = FleetState()
    containers = []
    now = 0.0
    for n in range(3):
        containers.append(ObservedContainer(f"nvidia-nm1_{n}", "nvidia-nm1", "failed", f"c{n}", "nm1"))
        decision, state = decide(1, SLOTS[:1], Observation(tuple(containers)), now, state, TIMINGS)
        now += 20
    assert decision.crash_looping == ("nvidia-nm1",)
    assert decision.of_type(ContainerLost)[0].crash_looping
    decision, state = decide(1, SLOTS[:1], Observation(tuple(containers)), now + 30, state, TIMINGS)
    assert decision.of_type(StartContainer) == []
    assert "crash loop" in decision.blocked.reason
    # Once the window has passed, it is tried again.
    decision, state = decide(1, SLOTS[:1], Observation(tuple(containers)), now + 200, state, TIMINGS)
    assert len(decision.of_type(StartContainer)) == 1


def test_crash_loop_counts_only_failures_inside_the_window():
    assert is_crash_looping((0, 10, 20), 50, TIMINGS)
    assert not is_crash_looping((0, 10, 20), 105, TIMINGS)


def test_scale_down_drains_a_ready_instance_then_releases_it_once_stopped():
    c1, c2 = running("nvidia-nm1", cid="c1", started=1), running("nvidia-nm2", cid="c2", started=2)
    members = {"c1": member("c1"), "c2": member("c2")}
    decision, state = decide(1, SLOTS, Observation((c1, c2), members), 10.0, FleetState(), TIMINGS)
    drains = decision.of_type(SendDrain)
    assert [d.instance_id for d in drains] == ["c2"]  # the youngest
    assert decision.of_type(ReleaseContainer) == []
    # Not acked yet: re-sent after command_resend_s.
    decision, state = decide(1, SLOTS, Observation((c1, c2), members), 12.5, state, TIMINGS)
    assert [d.command_id for d in decision.of_type(SendDrain)] == [drains[0].command_id]
    # Acked: not re-sent, still not released.
    acked = frozenset({drains[0].command_id})
    decision, state = decide(1, SLOTS, Observation((c1, c2), members, acked_commands=acked), 15.0, state, TIMINGS)
    assert decision.actions == ()
    # The agent announces it stopped: release.
    members["c2"] = member("c2", InstanceState.STOPPED, seq=3)
    decision, state = decide(1, SLOTS, Observation((c1, c2), members, acked_commands=acked), 16.0, state, TIMINGS)
    assert [(r.instance_id, r.reason) for r in decision.of_type(ReleaseContainer)] == [("c2", "drained")]
    # Its completion afterwards is not a failure.
    killed = ObservedContainer(c2.skein_id, c2.service, "killed", "c2", "nm2")
    decision, state = decide(1, SLOTS, Observation((c1, killed), members), 17.0, state, TIMINGS)
    assert decision.of_type(ContainerLost) == [] and decision.of_type(StartContainer) == []


def test_a_drain_that_never_finishes_is_released_after_its_timeout():
    c1, c2 = running("nvidia-nm1", cid="c1"), running("nvidia-nm2", cid="c2", started=5)
    members = {"c1": member("c1"), "c2": member("c2")}
    _, state = decide(1, SLOTS, Observation((c1, c2), members), 0.0, FleetState(), TIMINGS)
    decision, state = decide(1, SLOTS, Observation((c1, c2), members), 15.0, state, TIMINGS)
    assert [r.reason for r in decision.of_type(ReleaseContainer)] == ["drain timed out"]


def test_scale_down_releases_a_not_yet_ready_container_without_a_drain():
    c1 = running("nvidia-nm1", cid="c1", started=1)
    pending = ObservedContainer("nvidia-nm2_0", "nvidia-nm2", "requested")
    decision, _ = decide(1, SLOTS, Observation((c1, pending), {"c1": member("c1")}), 5.0, FleetState(), TIMINGS)
    assert decision.of_type(SendDrain) == []
    assert [r.skein_id for r in decision.of_type(ReleaseContainer)] == ["nvidia-nm2_0"]


def test_a_silent_instance_is_released_and_counted_as_a_failure():
    c1 = running("nvidia-nm1", cid="c1")
    observed = Observation((c1,), {"c1": member("c1")}, last_heartbeat={"c1": 0.0})
    decision, state = decide(1, SLOTS, observed, 30.0, FleetState(), TIMINGS)
    assert "no heartbeat" in decision.of_type(ReleaseContainer)[0].reason
    assert decision.of_type(ContainerLost)[0].instance_id == "c1"
    assert state.failures["nvidia-nm1"] == (30.0,)


def test_a_container_never_ready_is_given_up_after_the_start_timeout():
    c1 = running("nvidia-nm1", cid="c1", started=0)
    decision, _ = decide(1, SLOTS, Observation((c1,)), 10.0, FleetState(), TIMINGS)
    assert decision.actions == ()
    decision, _ = decide(1, SLOTS, Observation((c1,)), 60.0, FleetState(), TIMINGS)
    assert "not ready" in decision.of_type(ReleaseContainer)[0].reason


def test_takeover_keeps_running_containers_and_forgets_old_completions():
    old = ObservedContainer("nvidia-nm1_0", "nvidia-nm1", "failed", "c0", "nm1")
    live = running("nvidia-nm1", 1, cid="c1")
    state = takeover_state((old, live))
    decision, state = decide(1, SLOTS, Observation((old, live), {"c1": member("c1")}), 0.0, state, TIMINGS)
    assert decision.actions == ()
    assert state.failures == {}


def test_scale_down_drains_the_instance_model_placement_emptied_before_the_youngest():
    c1, c2 = running("nvidia-nm1", cid="c1"), running("nvidia-nm2", cid="c2", started=5)
    members = {"c1": member("c1"), "c2": member("c2")}
    observed = Observation((c1, c2), members, release_first=frozenset({"c1"}))
    decision, _ = decide(1, SLOTS, observed, 10.0, FleetState(), TIMINGS)
    assert [d.instance_id for d in decision.of_type(SendDrain)] == ["c1"]  # c2 is younger but holds models
