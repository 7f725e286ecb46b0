"""FleetView applies lifecycle events in place, keeps tombstones bounded oldest first, and
costs per event what the event touched, not the size of the fleet."""
import time

from tarn_am import view as fleet_view
from tarn_am.view import FleetView
from tarn_shared import events as ev
from tarn_shared.membership import MembershipView, apply_snapshot


def endpoints(i: int) -> ev.Endpoints:
    return ev.Endpoints(host=f"10.0.{i // 250}.{i % 250}", http_port=8000, grpc_port=8001, metrics_port=8002)


def instance(kind, i: int, seq: int):
    return kind(deployment="d", app_id="a", instance_id=f"c{i}", seq=seq, endpoints=endpoints(i))


def test_a_stale_ready_cannot_resurrect_a_stopped_instance():
    view = FleetView("d")
    view.apply_lifecycle("1-0", instance(ev.InstanceReady, 1, 1), 0.0)
    view.apply_lifecycle("2-0", instance(ev.InstanceStopped, 1, 2), 0.0)
    version = view.version
    view.apply_lifecycle("3-0", instance(ev.InstanceReady, 1, 9), 0.0)
    assert view.membership.members["c1"].state is ev.InstanceState.STOPPED
    assert view.version == version  # nothing changed: no snapshot is due


def test_tombstones_beyond_the_bound_go_oldest_first_and_live_members_stay(monkeypatch):
    monkeypatch.setattr(fleet_view, "KEEP_STOPPED", 5)
    monkeypatch.setattr(fleet_view, "FORGET_SLACK", 2)
    view = FleetView("d")
    view.apply_lifecycle("1-0", instance(ev.InstanceReady, 999, 1), 0.0)
    for i in range(8):
        view.apply_lifecycle(f"{10 + i}-0", instance(ev.InstanceStopped, i, 1), 0.0)
    stopped = {i for i, m in view.membership.members.items() if m.state is ev.InstanceState.STOPPED}
    assert stopped == {f"c{i}" for i in range(3, 8)}  # 8 > 5 + 2: back to the 5 newest
    assert view.membership.members["c999"].state is ev.InstanceState.READY


def test_a_bootstrap_snapshot_orders_its_tombstones_so_the_oldest_go_first(monkeypatch):
    monkeypatch.setattr(fleet_view, "KEEP_STOPPED", 2)
    monkeypatch.setattr(fleet_view, "FORGET_SLACK", 0)
    view = FleetView("d")
    members = [ev.MemberState(instance_id=f"c{i}", state=ev.InstanceState.STOPPED, seq=1, endpoints=endpoints(i))
               for i in range(3)]
    snapshot = ev.MembershipSnapshot(deployment="d", app_id="a", snapshot_seq=1, desired_count=0,
                                    members=members)
    view.membership = apply_snapshot(MembershipView(), snapshot, "50-0")
    view.apply_lifecycle("60-0", instance(ev.InstanceStopped, 7, 1), 0.0)
    view.reindex_stopped()
    assert set(view.membership.members) == {"c2", "c7"}  # c7 is the newest; c0, c1 came first


def test_an_event_costs_the_same_in_a_fleet_of_ten_thousand_as_in_one_of_a_hundred():
    def per_event_s(size: int) -> float:
        view = FleetView("d")
        for i in range(size):
            view.apply_lifecycle(f"{i + 1}-0", instance(ev.InstanceReady, i, 1), 0.0)
        churn = [instance(kind, i, seq) for i in range(200) for kind, seq in
                 ((ev.InstanceDraining, 2), (ev.InstanceStopped, 3))]
        started = time.perf_counter()
        for n, event in enumerate(churn):
            view.apply_lifecycle(f"{size + n + 1}-0", event, 0.0)
        return (time.perf_counter() - started) / len(churn)

    small, large = per_event_s(100), per_event_s(10_000)
    # A copy or a scan of the fleet per event made this about 100x (0.3 ms against 3 us);
    # the bound is generous for a noisy machine.
    assert large < 10 * small + 50e-6, (small, large)
