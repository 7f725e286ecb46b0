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
    announcer = announcer.snapshot_sent(version=7, now=100.0)
    assert not announcer.snapshot_due(False, 7, 100.0 + ev.SNAPSHOT_INTERVAL_S / 2)
    assert announcer.snapshot_due(True, 7, 100.0) and announcer.snapshot_due(False, 8, 100.0)
