from tarn_shared import events as ev
from tarn_shared.membership import MembershipView, apply_delta, apply_event, apply_snapshot, forget_stopped

EP = {"c1": ev.Endpoints(host="n1", http_port=8000), "c2": ev.Endpoints(host="n2", http_port=8000)}


def event(cls, cid, seq, **kw):
    return cls(deployment="d", app_id="a", instance_id=cid, seq=seq, endpoints=EP[cid], **kw)


def snapshot(members, through=None):
    return ev.MembershipSnapshot(deployment="d", app_id="a", snapshot_seq=1, desired_count=len(members),
                                 lifecycle_through=through,
                                 members=[ev.MemberState(instance_id=c, state=s, seq=q, endpoints=EP[c])
                                          for c, s, q in members])


def delta(members, removed=(), through=None):
    return ev.MembershipDelta(deployment="d", app_id="a", snapshot_seq=2, full_seq=1, desired_count=len(members),
                              lifecycle_through=through, removed=list(removed),
                              members=[ev.MemberState(instance_id=c, state=s, seq=q, endpoints=EP[c])
                                       for c, s, q in members])


def test_a_ready_instance_is_routable_under_its_host_port():
    view = apply_event(MembershipView(), event(ev.InstanceReady, "c1", 1), "100-0")
    assert list(view.routable()) == ["n1:8000"]


def test_draining_takes_an_instance_out_of_the_routable_set():
    view = apply_event(MembershipView(), event(ev.InstanceReady, "c1", 1), "100-0")
    view = apply_event(view, event(ev.InstanceDraining, "c1", 2), "101-0")
    assert view.routable() == {}


def test_an_older_event_arriving_late_is_ignored():
    view = apply_event(MembershipView(), event(ev.InstanceDraining, "c1", 5), "101-0")
    view = apply_event(view, event(ev.InstanceReady, "c1", 4), "102-0")
    assert view.members["c1"].state is ev.InstanceState.DRAINING


def test_unrouted_at_the_same_seq_moves_a_draining_instance_forward():
    view = apply_event(MembershipView(), event(ev.InstanceDraining, "c1", 5), "101-0")
    view = apply_event(view, event(ev.InstanceUnrouted, "c1", 5), "102-0")
    assert view.members["c1"].state is ev.InstanceState.UNROUTED


def test_a_stale_snapshot_never_resurrects_an_instance_seen_draining_later():
    view = apply_event(MembershipView(), event(ev.InstanceDraining, "c1", 3), "200-0")
    view = apply_snapshot(view, snapshot([("c1", "ready", 2)], through="150-0"), "201-0")
    assert view.routable() == {}


def test_stopped_is_terminal_even_against_a_higher_seq():
    view = apply_event(MembershipView(), event(ev.InstanceStopped, "c1", 3), "200-0")
    view = apply_event(view, event(ev.InstanceReady, "c1", 9), "300-0")
    assert view.members["c1"].state is ev.InstanceState.STOPPED


def test_a_snapshot_adds_instances_the_consumer_has_not_seen():
    view = apply_snapshot(MembershipView(), snapshot([("c1", "ready", 1), ("c2", "ready", 4)], "10-0"), "11-0")
    assert set(view.routable()) == {"n1:8000", "n2:8000"}


def test_a_snapshot_drops_an_unlisted_instance_the_am_had_already_seen():
    view = apply_event(MembershipView(), event(ev.InstanceReady, "c1", 1), "100-0")
    view = apply_snapshot(view, snapshot([], through="100-0"), "150-0")
    assert view.routable() == {}
    assert view.members["c1"].state is ev.InstanceState.STOPPED


def test_a_snapshot_keeps_an_unlisted_instance_the_am_had_not_seen_yet():
    view = apply_event(MembershipView(), event(ev.InstanceReady, "c1", 1), "100-5")
    view = apply_snapshot(view, snapshot([], through="100-4"), "100-6")
    assert list(view.routable()) == ["n1:8000"]


def test_a_snapshot_without_a_through_mark_removes_nothing():
    view = apply_event(MembershipView(), event(ev.InstanceReady, "c1", 1), "100-0")
    view = apply_snapshot(view, snapshot([], through=None), "150-0")
    assert list(view.routable()) == ["n1:8000"]


def test_tombstones_are_bounded_oldest_first():
    view = MembershipView()
    for i, cid in enumerate(["c1", "c2"]):
        view = apply_event(view, event(ev.InstanceStopped, cid, 1), f"{100 + i}-0")
    assert set(forget_stopped(view, keep=1).members) == {"c2"}


def test_a_delta_never_drops_an_instance_it_does_not_name():
    view = apply_event(MembershipView(), event(ev.InstanceReady, "c1", 1), "100-0")
    view = apply_delta(view, delta([("c2", "ready", 1)], through="200-0"), "201-0")
    assert set(view.routable()) == {"n1:8000", "n2:8000"}


def test_a_delta_removes_a_named_instance_the_am_had_already_seen_and_keeps_one_it_had_not():
    view = apply_event(MembershipView(), event(ev.InstanceReady, "c1", 1), "100-0")
    view = apply_event(view, event(ev.InstanceReady, "c2", 1), "300-0")
    view = apply_delta(view, delta([], removed=["c1", "c2"], through="200-0"), "301-0")
    assert view.members["c1"].state is ev.InstanceState.STOPPED
    assert list(view.routable()) == ["n2:8000"]  # c2 came back after what the AM had applied


def test_a_stale_delta_never_resurrects_a_stopped_instance():
    view = apply_event(MembershipView(), event(ev.InstanceStopped, "c1", 3), "200-0")
    view = apply_delta(view, delta([("c1", "ready", 2)], through="150-0"), "201-0")
    assert view.routable() == {} and view.members["c1"].state is ev.InstanceState.STOPPED
