"""What tarn-am announces on the lifecycle stream for what it observes (pure)."""
from __future__ import annotations

from tarn_shared import events as ev
from tarn_shared.membership import Member

from tarn_am.announcements import Announcer, attempt_of
from tarn_am.containers import ContainerLost, ObservedContainer

APP = "application_1_0001"
ATTEMPT_2 = "1_0001_02"


def member(instance_id: str, state=ev.InstanceState.READY, seq: int = 3, app_id=APP) -> Member:
    return Member(instance_id, state, seq, ev.Endpoints(host="nm1", http_port=8000), ("m",), app_id=app_id)


def container(skein_id: str, state: str, instance_id: str = "") -> ObservedContainer:
    return ObservedContainer(skein_id, skein_id.split("_")[0], state, instance_id, "nm1")


def test_attempt_is_read_from_a_container_id_with_or_without_epoch():
    assert attempt_of("container_1_0001_02_000003") == ATTEMPT_2
    assert attempt_of("container_e17_1_0001_02_000003") == ATTEMPT_2
    assert attempt_of("nvidia-nm1_0") is None


def test_a_container_is_announced_once_per_state_and_completions_only_when_accounted_for():
    announcer = Announcer("d", APP)
    running = container("a_0", "running", "container_1_0001_02_000002")
    assert announcer.changed([running]) == [running]
    assert isinstance(announcer.container_event(running, frozenset()), ev.ContainerRunning)
    announcer = announcer.saw(running)
    assert announcer.changed([running]) == []
    killed = container("a_0", "killed", "container_1_0001_02_000002")
    assert announcer.container_event(killed, frozenset()) is None  # not ours to call completed yet
    assert isinstance(announcer.container_event(killed, frozenset({"a_0"})), ev.ContainerCompleted)
    assert announcer.container_event(container("a_0", "failed"), frozenset({"a_0"})) is None


def test_a_restarted_am_does_not_announce_what_was_there_before_it():
    before = [container("a_0", "running", "c1"), container("b_0", "killed", "c2")]
    assert Announcer("d", APP).taken_over(before).changed(before) == []


def test_a_lost_container_with_a_live_instance_is_announced_stopped_one_seq_on():
    lost = ContainerLost("a_0", "c1", "a", "nm1", "exit 137", 2, False)
    failed, stopped = Announcer("d", APP).lost(lost, member("c1", seq=4))
    assert isinstance(failed, ev.ContainerFailed) and failed.restarts == 2
    assert isinstance(stopped, ev.InstanceStopped) and stopped.seq == 5
    assert stopped.reason == "container lost: exit 137"
    already = Announcer("d", APP).lost(lost, member("c1", ev.InstanceState.STOPPED))
    assert [type(e) for e in already] == [ev.ContainerFailed]


def test_orphans_are_instances_of_another_attempt_or_application_or_an_ended_container():
    announcer = Announcer("d", APP, attempt=ATTEMPT_2)
    members = {
        "container_1_0001_01_000002": member("container_1_0001_01_000002"),  # the first attempt's
        "container_9_0009_01_000002": member("container_9_0009_01_000002", app_id="application_9_0009"),
        "container_1_0001_02_000003": member("container_1_0001_02_000003"),  # ours, container ended
        "container_1_0001_02_000004": member("container_1_0001_02_000004"),  # ours, running
        "container_1_0001_02_000005": member("container_1_0001_02_000005"),  # unknown yet: left alone
    }
    containers = [container("a_0", "killed", "container_1_0001_02_000003"),
                  container("b_0", "running", "container_1_0001_02_000004")]
    stops = announcer.orphans(containers, members)
    assert sorted(m.instance_id for m, _ in stops) == [
        "container_1_0001_01_000002", "container_1_0001_02_000003", "container_9_0009_01_000002"]
    by_id = {m.instance_id: stop for m, stop in stops}
    assert by_id["container_9_0009_01_000002"].app_id == "application_9_0009"
    assert all(stop.seq == 4 for stop in by_id.values())


def test_a_snapshot_number_is_never_reused_even_when_publishing_failed():
    announcer = Announcer("d", APP)
    assert announcer.snapshot_due(False, 0, 0.0)  # never sent
    first, announcer = announcer.snapshot({"c1": member("c1")}, {"c1"}, "5-0", 2)
    assert first.snapshot_seq == 1 and [m.instance_id for m in first.members] == ["c1"]
    second, announcer = announcer.snapshot({}, set(), "5-0", 2)  # the first one's publish failed
    assert second.snapshot_seq == 2
    announcer = announcer.sent(second, version=7, now=100.0)
    assert not announcer.snapshot_due(False, 7, 100.0 + announcer.full_every_s / 2)
    assert announcer.snapshot_due(True, 7, 100.0) and announcer.snapshot_due(False, 8, 100.0)
    assert announcer.snapshot_due(False, 7, 100.0 + announcer.full_every_s)


def fleet(n: int, **changed) -> dict:
    members = {f"c{i}": member(f"c{i}") for i in range(n)}
    members.update(changed)
    return members


def test_the_first_membership_update_is_a_full_snapshot():
    update, _ = Announcer("d", APP).update(fleet(10), set(fleet(10)), "5-0", 10, now=0.0)
    assert isinstance(update, ev.MembershipSnapshot) and len(update.members) == 10


def test_a_change_between_full_snapshots_publishes_only_what_changed():
    members = fleet(10)
    full, announcer = Announcer("d", APP).update(members, set(members), "5-0", 10, now=0.0)
    announcer = announcer.sent(full, version=1, now=0.0)
    draining = member("c3", ev.InstanceState.DRAINING, seq=4)
    members = fleet(10, c3=draining)
    live = set(members) - {"c7"}  # c7's container ended
    delta, announcer = announcer.update(members, live, "9-0", 9, now=1.0)
    assert isinstance(delta, ev.MembershipDelta)
    assert [(m.instance_id, m.state, m.seq) for m in delta.members] == [("c3", ev.InstanceState.DRAINING, 4)]
    assert delta.removed == ["c7"]
    assert (delta.full_seq, delta.snapshot_seq, delta.lifecycle_through) == (full.snapshot_seq, 2, "9-0")
    announcer = announcer.sent(delta, version=2, now=1.0)
    again, _ = announcer.update(members, live, "9-0", 9, now=2.0)
    assert again is None  # told already: nothing to publish


def test_a_delta_that_failed_to_publish_is_carried_by_the_next_one():
    members = fleet(10)
    full, announcer = Announcer("d", APP).update(members, set(members), "5-0", 10, now=0.0)
    announcer = announcer.sent(full, version=1, now=0.0)
    members = fleet(10, c1=member("c1", ev.InstanceState.DRAINING, seq=4))
    lost, announcer = announcer.update(members, set(members), "6-0", 10, now=1.0)  # its publish failed
    members = fleet(10, c1=member("c1", ev.InstanceState.DRAINING, seq=4), c2=member("c2", seq=9))
    delta, _ = announcer.update(members, set(members), "7-0", 10, now=2.0)
    assert sorted(m.instance_id for m in delta.members) == ["c1", "c2"]
    assert delta.snapshot_seq == lost.snapshot_seq + 1


def test_a_full_snapshot_goes_out_when_due_asked_for_or_no_larger_than_the_delta():
    members = fleet(10)
    full, announcer = Announcer("d", APP).update(members, set(members), "5-0", 10, now=0.0)
    announcer = announcer.sent(full, version=1, now=0.0)
    one_changed = fleet(10, c1=member("c1", seq=4))
    assert isinstance(announcer.update(one_changed, set(members), "6-0", 10, now=1.0, full=True)[0],
                      ev.MembershipSnapshot)  # e.g. the bus recovered: Redis may be empty
    assert isinstance(announcer.update(one_changed, set(members), "6-0", 10, now=announcer.full_every_s)[0],
                      ev.MembershipSnapshot)
    most_changed = {i: member(i, seq=5) for i in members}
    assert isinstance(announcer.update(most_changed, set(members), "6-0", 10, now=1.0)[0], ev.MembershipSnapshot)
