"""What the reconcile decision remembers survives a tarn-am restart (issue 17, item 6):
fleet_memory encodes reconcile.FleetState for Redis and resumes from it on takeover. Pure."""
from __future__ import annotations

from tarn_shared.events import InstanceState

from tarn_am.containers import ContainerLost, ObservedContainer, ReleaseContainer, SendDrain, StartContainer
from tarn_am.fleet_memory import encode, resumed
from tarn_am.reconcile import FleetState, Observation, decide, takeover_state
from tarn_am.unfilled import Unfilled

from .test_reconcile import SLOTS, TIMINGS, member, running


def draining_then_restarted(memory: bool):
    """Scale 2 -> 1: c2 is being drained when tarn-am restarts; the agent has acked and
    announced it draining. Returns the first decision of the new tarn-am and its state."""
    c1, c2 = running("nvidia-nm1", cid="c1", started=1), running("nvidia-nm2", cid="c2", started=2)
    members = {"c1": member("c1"), "c2": member("c2")}
    decision, state = decide(1, SLOTS, Observation((c1, c2), members), 10.0, FleetState(), TIMINGS)
    (drain,) = decision.of_type(SendDrain)
    text = encode(state) if memory else None
    members["c2"] = member("c2", InstanceState.DRAINING, seq=2)
    after = resumed(text, (c1, c2))
    acked = frozenset({drain.command_id})
    return decide(1, SLOTS, Observation((c1, c2), members, acked_commands=acked), 12.0, after, TIMINGS), members


def test_a_drain_in_progress_goes_on_after_a_restart_and_ends_as_a_drain_not_a_failure():
    (decision, state), members = draining_then_restarted(memory=True)
    assert decision.actions == ()  # nothing new drained, nothing released early
    assert [(k, d.started_at) for k, d in state.drains.items()] == [("nvidia-nm2_0", 10.0)]  # its timeout runs on
    members["c2"] = member("c2", InstanceState.STOPPED, seq=3)
    c1, c2 = running("nvidia-nm1", cid="c1", started=1), running("nvidia-nm2", cid="c2", started=2)
    decision, state = decide(1, SLOTS, Observation((c1, c2), members), 13.0, state, TIMINGS)
    assert [(r.instance_id, r.reason) for r in decision.of_type(ReleaseContainer)] == [("c2", "drained")]
    killed = ObservedContainer(c2.skein_id, c2.service, "killed", "c2", "nm2")
    decision, state = decide(1, SLOTS, Observation((c1, killed), members), 14.0, state, TIMINGS)
    assert decision.of_type(ContainerLost) == [] and state.failures == {}


def test_without_the_memory_the_drain_would_start_over_and_reuse_a_command_id():
    (decision, state), _ = draining_then_restarted(memory=False)
    (again,) = decision.of_type(SendDrain)  # what the stored state prevents:
    assert state.drains["nvidia-nm2_0"].started_at == 12.0  # a drain timeout restarted from zero
    assert again.command_id == "drain-c2-1"  # and the command ids counting from 0 again


def test_backoff_crash_counts_and_command_ids_hold_across_a_restart():
    failed = ObservedContainer("nvidia-nm1_0", "nvidia-nm1", "failed", "c1", "nm1", exit_message="exit 1")
    other = running("nvidia-nm2", cid="c2", started=95)
    _, state = decide(2, SLOTS, Observation((failed, other)), 100.0, FleetState(command_seq=41), TIMINGS)
    assert state.failures["nvidia-nm1"] == (100.0,) and state.next_start_at
    again = resumed(encode(state), (failed, other))
    assert again.failures == state.failures and again.next_start_at == state.next_start_at
    assert again.command_seq == 41 and again.handled == takeover_state((failed, other)).handled
    decision, _ = decide(2, SLOTS, Observation((failed, other)), 101.0, again, TIMINGS)
    assert decision.of_type(StartContainer) == [] and "backoff" in decision.blocked.reason


def test_drains_and_releases_of_containers_that_are_gone_are_dropped():
    c2 = running("nvidia-nm2", cid="c2", started=2)
    members = {"c1": member("c1"), "c2": member("c2")}
    _, state = decide(1, SLOTS, Observation((running("nvidia-nm1", cid="c1", started=1), c2), members), 10.0,
                      FleetState(released=frozenset({"nvidia-nm1_7"})), TIMINGS)
    again = resumed(encode(state), (running("nvidia-nm1", cid="c1", started=1),))  # c2's container is gone
    assert again.drains == {} and again.released == frozenset()


def test_unreadable_memory_starts_afresh_as_before():
    live = running("nvidia-nm1", cid="c1")
    for junk in (None, "", "not json", '{"failures": "x"}', '{"drains": {"a": {"skein_id": 1}}}'):
        assert resumed(junk, (live,)) == takeover_state((live,))


def test_how_long_a_request_has_waited_and_unfilled_slots_hold_across_a_restart():
    waiting = ObservedContainer("nvidia-nm1_0", "nvidia-nm1", "waiting")
    state = FleetState(pending_since={"nvidia-nm1_0": 50.0, "nvidia-nm2_3": 40.0},
                       unfilled={"nvidia-nm1": Unfilled(50.0, "YARN has not allocated it")})
    again = resumed(encode(state), (waiting,))
    assert again.pending_since == {"nvidia-nm1_0": 50.0}  # nvidia-nm2_3 is gone
    assert again.unfilled == state.unfilled
