"""The desired set, built from lifecycle events with the shared sequence rules."""
import json

from tarn_gateway_sync.routing import Fleet, apply_lifecycle, changed_addresses, due_unrouted, znode_data
from tarn_shared import events as ev


def event(kind, port, seq, **extra):
    return kind(deployment="d", app_id="app", instance_id=f"c{port}", seq=seq,
                endpoints=ev.Endpoints(host="h", http_port=port), models=["m"], **extra)


def snapshot(members, through):
    return ev.MembershipSnapshot(deployment="d", app_id="app", snapshot_seq=1, lifecycle_through=through,
                                 desired_count=len(members), members=members)


def member(port, state, seq):
    return ev.MemberState(instance_id=f"c{port}", state=state, seq=seq, endpoints=ev.Endpoints(host="h", http_port=port))


def test_ready_instances_are_routable_and_draining_ones_are_not():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    fleet = apply_lifecycle(fleet, event(ev.InstanceReady, 2, 1), "2-0")
    fleet = apply_lifecycle(fleet, event(ev.InstanceDraining, 2, 2), "3-0")
    assert set(fleet.routable()) == {"h:1"} and set(fleet.draining()) == {"h:2"}


def test_a_stale_snapshot_does_not_bring_back_a_stopped_instance():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    fleet = apply_lifecycle(fleet, event(ev.InstanceStopped, 1, 2), "2-0")
    fleet = apply_lifecycle(fleet, snapshot([member(1, ev.InstanceState.READY, 1)], "1-0"), "3-0")
    assert fleet.routable() == {} and fleet.gone() == {"h:1"}


def test_no_snapshot_means_the_view_is_not_authoritative():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    assert not fleet.authoritative
    empty = apply_lifecycle(fleet, snapshot([], None), "2-0")
    assert set(empty.routable()) == {"h:1"} and not empty.authoritative


def test_a_delta_does_not_make_the_view_authoritative():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    delta = ev.MembershipDelta(deployment="d", app_id="app", snapshot_seq=2, full_seq=1, lifecycle_through="2-0",
                               desired_count=1, members=[member(2, ev.InstanceState.READY, 1)])
    fleet = apply_lifecycle(fleet, delta, "3-0")
    assert set(fleet.routable()) == {"h:1", "h:2"} and not fleet.authoritative


def test_a_delta_applied_in_place_touches_only_the_addresses_it_names():
    fleet = Fleet()
    for port in (1, 2, 3, 5):
        fleet.apply(event(ev.InstanceReady, port, 1), f"{port}-0")
    # c5 was seen after lifecycle_through: the delta does not know it yet, so it stays.
    delta = ev.MembershipDelta(deployment="d", app_id="app", snapshot_seq=2, full_seq=1, lifecycle_through="3-0",
                               desired_count=3, members=[member(4, ev.InstanceState.READY, 1)],
                               removed=["c2", "c5", "unknown"])
    assert fleet.apply(delta, "6-0") == {"h:2", "h:4"}
    assert set(fleet.routable()) == {"h:1", "h:3", "h:4", "h:5"} and fleet.gone() == {"h:2"}
    assert fleet.apply(delta, "7-0") == set()  # the same delta again changes nothing


def test_a_snapshot_that_covers_an_instance_and_omits_it_removes_it():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    fleet = apply_lifecycle(fleet, snapshot([], "1-0"), "2-0")
    assert fleet.authoritative and fleet.routable() == {}


def test_an_address_reused_by_a_new_instance_stays_routed():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    fleet = apply_lifecycle(fleet, event(ev.InstanceStopped, 1, 2), "2-0")
    reused = ev.InstanceReady(deployment="d", app_id="app", instance_id="other", seq=1,
                              endpoints=ev.Endpoints(host="h", http_port=1))
    fleet = apply_lifecycle(fleet, reused, "3-0")
    assert set(fleet.routable()) == {"h:1"} and fleet.gone() == frozenset()


def test_changed_addresses_name_only_what_an_event_touched():
    before = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    after = apply_lifecycle(before, event(ev.InstanceReady, 2, 1), "2-0")
    assert changed_addresses(before, after) == {"h:2"}


def test_unrouted_is_due_once_per_draining_sequence():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceDraining, 1, 3), "1-0")
    assert set(due_unrouted(fleet.draining(), {}, {})) == {"h:1"}
    assert due_unrouted(fleet.draining(), {"c1": (3, None)}, {}) == {}
    unrouted = apply_lifecycle(fleet, event(ev.InstanceUnrouted, 1, 3), "2-0")
    assert due_unrouted(unrouted.draining(), {}, {}) == {}


def test_unrouted_is_announced_again_each_time_the_open_requests_change_until_zero():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceDraining, 1, 3), "1-0")
    assert due_unrouted(fleet.draining(), {}, {"h:1": None})["h:1"][1] is None  # the first, not counted yet
    assert due_unrouted(fleet.draining(), {"c1": (3, None)}, {"h:1": None}) == {}
    assert due_unrouted(fleet.draining(), {"c1": (3, None)}, {"h:1": 4})["h:1"][1] == 4
    assert due_unrouted(fleet.draining(), {"c1": (3, 4)}, {"h:1": 4}) == {}
    assert due_unrouted(fleet.draining(), {"c1": (3, 4)}, {"h:1": 0})["h:1"][1] == 0


def test_a_replica_that_never_announced_an_unrouted_instance_still_sends_its_counts():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceDraining, 1, 3), "1-0")
    unrouted = apply_lifecycle(fleet, event(ev.InstanceUnrouted, 1, 3), "2-0")
    assert due_unrouted(unrouted.draining(), {}, {"h:1": None}) == {}
    assert due_unrouted(unrouted.draining(), {}, {"h:1": 2})["h:1"][1] == 2


def test_an_unready_instance_is_taken_out_gently_like_a_drain_not_removed_at_once():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    fleet = apply_lifecycle(fleet, event(ev.InstanceUnready, 1, 2, reason="tritonserver not answering in time"), "2-0")
    assert fleet.routable() == {} and set(fleet.draining()) == {"h:1"} and fleet.gone() == frozenset()
    assert due_unrouted(fleet.draining(), {}, {"h:1": 0}) == {}  # unready is not a drain: nobody waits for it
    back = apply_lifecycle(fleet, event(ev.InstanceReady, 1, 3), "3-0")
    assert set(back.routable()) == {"h:1"} and back.draining() == {}


def test_znode_data_carries_what_knox_and_operators_read():
    fleet = apply_lifecycle(Fleet(), event(ev.InstanceReady, 1, 1), "1-0")
    data = json.loads(znode_data("d", fleet.routable()["h:1"]))
    assert data["url"] == "http://h:1" and data["host"] == "h" and data["port"] == 1
    assert data["container_id"] == "c1" and data["app_id"] == "app" and data["models"] == ["m"]
