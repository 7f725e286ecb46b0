"""Container requests YARN does not fill (issue 17, item 5), pure: past the blocked timeout a
request no longer counts as serving, its slot is reported blocked with YARN's word, and it is
re-placed on a free node; then `tarn status`'s line for it."""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List

from hypothesis import given, settings
from hypothesis import strategies as st

from tarn_shared.events import Endpoints, InstanceState
from tarn_shared.membership import Member

from tarn_am.cli.status_slots import slot_lines
from tarn_am.containers import ObservedContainer, ReleaseContainer, SendDrain, Slot, StartContainer
from tarn_am.reconcile import FleetState, Observation, ReconcileTimings, decide
from tarn_am.slot_views import SlotInputs, slot_state

SLOTS = [Slot("nvidia-nm1", "nm1"), Slot("nvidia-nm2", "nm2")]
TIMINGS = ReconcileTimings(blocked_timeout_s=30, start_timeout_s=1000, heartbeat_timeout_s=1000)


def requested(service: str, n: int = 0, message: str = "") -> ObservedContainer:
    return ObservedContainer(f"{service}_{n}", service, "requested", exit_message=message)


def running(service: str, n: int = 0) -> ObservedContainer:
    return ObservedContainer(f"{service}_{n}", service, "running", f"container_{service}_{n}", service[7:],
                             started_at=0.0)


def ready(*containers: ObservedContainer) -> Dict[str, Member]:
    return {c.instance_id: Member(c.instance_id, InstanceState.READY, 1, Endpoints(host="h", http_port=1))
            for c in containers}


def rounds(desired: int, containers, times, state=FleetState()):
    for now in times:
        decision, state = decide(desired, SLOTS, Observation(tuple(containers)), now, state, TIMINGS)
    return decision, state


def test_a_request_pending_past_the_blocked_timeout_is_re_placed_on_a_free_node():
    stuck = requested("nvidia-nm1")
    early, state = rounds(1, [stuck], [0.0, 29.0])
    assert early.actions == ()  # not yet: YARN takes a moment to fill a request it can
    decision, state = decide(1, SLOTS, Observation((stuck,)), 30.0, state, TIMINGS)
    assert decision.of_type(ReleaseContainer) == [ReleaseContainer("nvidia-nm1_0", "nvidia-nm1_0",
                                                                   "not allocated in time: re-placed on another node")]
    assert [(s.service, s.host) for s in decision.of_type(StartContainer)] == [("nvidia-nm2", "nm2")]
    assert decision.blocked is None  # the fleet will reach its target elsewhere
    assert "nm1 in 30 s" in state.unfilled["nvidia-nm1"].reason


def test_a_re_placed_slot_is_not_asked_again_while_another_node_serves():
    killed = replace(requested("nvidia-nm1"), state="killed")
    _, state = rounds(1, [requested("nvidia-nm1")], [0.0, 30.0])
    decision, state = decide(1, SLOTS, Observation((killed, requested("nvidia-nm2"))), 31.0, state, TIMINGS)
    assert decision.actions == ()  # the released request is no failure; nm2's fresh request counts
    assert "nvidia-nm1" in state.unfilled and state.failures == {}


def test_with_no_free_node_the_request_waits_reported_blocked_and_not_counted():
    serving, stuck = running("nvidia-nm2"), requested("nvidia-nm1", message="node lost")
    observed = Observation((stuck, serving), members=ready(serving))
    decision, state = decide(2, SLOTS, observed, 0.0, FleetState(), TIMINGS)
    decision, state = decide(2, SLOTS, observed, 45.0, state, TIMINGS)
    assert decision.actions == ()  # kept: YARN may still fill it
    assert decision.blocked is not None and decision.blocked.count == 1
    assert decision.blocked.reason == \
        "YARN has not allocated the container requested on nm1 in 45 s: node lost"
    inputs = SlotInputs(SLOTS, observed.containers, observed.members,
                        unfilled={s: u.reason for s, u in state.unfilled.items()})
    assert [slot_state(s, inputs, 45.0) for s in SLOTS] == ["blocked", "serving"]


def test_a_stuck_request_no_longer_needed_is_released():
    serving, stuck = running("nvidia-nm2"), requested("nvidia-nm1")
    observed = Observation((stuck, serving), members=ready(serving))
    _, state = decide(2, SLOTS, observed, 0.0, FleetState(), TIMINGS)
    decision, _ = decide(1, SLOTS, observed, 30.0, state, TIMINGS)  # the target went down meanwhile
    assert decision.of_type(ReleaseContainer) == [ReleaseContainer("nvidia-nm1_0", "nvidia-nm1_0",
                                                                   "not allocated in time; not needed")]


def test_the_blocked_mark_clears_once_yarn_runs_a_container_on_the_slot():
    _, state = rounds(1, [requested("nvidia-nm1")], [0.0, 30.0])
    _, state = decide(1, SLOTS, Observation((running("nvidia-nm1", 1),)), 40.0, state, TIMINGS)
    assert state.unfilled == {}


def test_tarn_status_names_the_blocked_node_with_yarns_reason():
    reason = "YARN has not allocated the container requested on nm1 in 45 s: node lost"
    state = {"slots": [{"node": "nm1", "service": "nvidia-nm1", "state": "blocked", "blocked_reason": reason},
                       {"node": "nm2", "service": "nvidia-nm2", "state": "serving"}]}
    assert slot_lines(state) == [f"blocked on nm1: {reason}"]


# -- the fleet over many rounds, on nodes YARN fills or never fills

def simulate(slots: List[Slot], fillable: set, desired: int, rounds_n: int = 40):
    containers: Dict[str, ObservedContainer] = {}
    members: Dict[str, Member] = {}
    state, decision, seq = FleetState(), None, 0
    for r in range(rounds_n):
        now = r * 10.0
        observed = Observation(tuple(containers.values()), members=dict(members),
                               last_heartbeat={m: now for m in members})
        decision, state = decide(desired, slots, observed, now, state, TIMINGS)
        for action in decision.actions:
            if isinstance(action, StartContainer):
                seq += 1
                c = ObservedContainer(f"{action.service}_{seq}", action.service, "requested")
                containers[c.skein_id] = c
            elif isinstance(action, ReleaseContainer):
                containers[action.skein_id] = replace(containers[action.skein_id], state="killed")
            elif isinstance(action, SendDrain):
                m = members[action.instance_id]
                members[action.instance_id] = replace(m, state=InstanceState.STOPPED, seq=m.seq + 1)
        for key, c in list(containers.items()):
            on_host = {s.service: s.host for s in slots}[c.service]
            if c.state == "requested" and on_host in fillable:  # YARN fills it before the next round
                containers[key] = replace(c, state="running", yarn_container_id=f"yc_{key}", host=on_host,
                                          started_at=now)
                members[f"yc_{key}"] = Member(f"yc_{key}", InstanceState.READY, 1, Endpoints(host=on_host,
                                                                                               http_port=1))
    return containers, decision


@settings(max_examples=150, deadline=None)
@given(nodes=st.integers(1, 4), data=st.data())
def test_the_fleet_reaches_its_target_on_the_nodes_yarn_can_fill(nodes, data):
    slots = [Slot(f"nvidia-n{i}", f"n{i}") for i in range(nodes)]
    fillable = set(data.draw(st.sets(st.sampled_from([s.host for s in slots]))))
    desired = data.draw(st.integers(0, nodes))
    containers, decision = simulate(slots, fillable, desired)
    active = [c for c in containers.values() if c.state in ("requested", "running")]
    assert len({c.service for c in active}) == len(active)  # never two on one node
    assert sum(c.state == "running" for c in active) == min(desired, len(fillable))
    assert all(c.host in fillable for c in active if c.state == "running")
    assert (decision.blocked is not None) == (desired > len(fillable))
