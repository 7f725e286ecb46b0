"""Which load and unload commands tarn-am sends for a placement (model_commands), and one
placement round over the agents' telemetry (model_round): pure, no servers."""
from __future__ import annotations

from tarn_shared import events as ev
from tarn_am.model_commands import LOAD, UNLOAD, CommandBook, CommandTimings, Outstanding, commands, \
    instance_count, settle, with_commands_in_flight
from tarn_am.model_copies import ModelPlan, ModelTarget
from tarn_am.model_placement import Consolidation, InstanceMemory, Move, Placement
from tarn_am.model_round import FleetInputs, plan_round

MiB = 1 << 20
T = CommandTimings(resend_s=120, retry_after_s=60)


def placement(loads=(), unloads=(), count=1) -> Placement:
    return Placement(tuple(Move(i, m) for i, m in loads), tuple(Move(i, m) for i, m in unloads), count)


def ack(command_id: str, status: ev.AckStatus, message: str = "") -> ev.CommandAck:
    return ev.CommandAck(deployment="d", app_id="a", container_id="c1", command_id=command_id,
                         command_type="command.load_model", status=status, message=message)


def test_each_move_becomes_one_command_and_a_move_with_one_outstanding_sends_nothing_more():
    sends, book = commands(placement(loads=[("c1", "bert"), ("c2", "bert")], unloads=[("c1", "old")]),
                           CommandBook(), 100.0, T)
    assert [(s.instance_id, s.model, s.kind, s.first) for s in sends] == [
        ("c1", "old", UNLOAD, True), ("c1", "bert", LOAD, True), ("c2", "bert", LOAD, True)]
    assert len({s.command_id for s in sends}) == 3
    again, same = commands(placement(loads=[("c1", "bert")], unloads=[("c1", "old")]), book, 110.0, T)
    assert again == [] and same.outstanding == book.outstanding


def test_an_unacknowledged_command_is_resent_with_its_id_after_the_resend_delay_only():
    _, book = commands(placement(loads=[("c1", "bert")]), CommandBook(), 100.0, T)
    assert commands(placement(), book, 219.0, T)[0] == []
    sends, book = commands(placement(loads=[("c1", "bert")]), book, 220.0, T)
    assert [(s.model, s.first, s.command_id) for s in sends] == [
        ("bert", False, book.outstanding[("c1", "bert")].command_id)]
    assert commands(placement(), book, 221.0, T)[0] == []  # the re-send restarted its clock


def test_a_done_load_stays_outstanding_until_the_telemetry_shows_the_model_so_no_second_copy_is_placed():
    _, book = commands(placement(loads=[("c1", "bert")]), CommandBook(), 100.0, T)
    command_id = book.outstanding[("c1", "bert")].command_id
    done = {command_id: ack(command_id, ev.AckStatus.DONE)}
    book = settle(book, done, {"c1"}, 105.0, T, {"c1": frozenset()})  # the ack overtook the sample
    assert list(book.outstanding) == [("c1", "bert")] and book.outstanding[("c1", "bert")].acked_at == 105.0
    assert commands(placement(), book, 300.0, T)[0] == []  # acknowledged: never re-sent
    book = settle(book, done, {"c1"}, 106.0, T, {"c1": frozenset({"bert"})})
    assert book.outstanding == {} and book.failures == {}
    sends, _ = commands(placement(unloads=[("c1", "bert")]), book, 106.0, T)
    assert [(s.kind, s.model) for s in sends] == [(UNLOAD, "bert")]


def test_a_done_unload_clears_once_the_model_left_the_telemetry_or_after_the_settle_delay():
    book = CommandBook(outstanding={("c1", "bert"): Outstanding("u-1", UNLOAD, 100.0)})
    done = {"u-1": ack("u-1", ev.AckStatus.DONE)}
    book = settle(book, done, {"c1"}, 101.0, T, {"c1": frozenset({"bert"})})
    assert list(book.outstanding) == [("c1", "bert")]
    assert settle(book, done, {"c1"}, 102.0, T, {"c1": frozenset()}).outstanding == {}
    assert settle(book, done, {"c1"}, 101.0 + T.settle_s, T, {"c1": frozenset({"bert"})}).outstanding == {}


def test_a_failed_load_is_remembered_and_not_retried_on_that_instance_until_the_retry_delay_passed():
    _, book = commands(placement(loads=[("c1", "bert")]), CommandBook(), 100.0, T)
    command_id = book.outstanding[("c1", "bert")].command_id
    book = settle(book, {command_id: ack(command_id, ev.AckStatus.FAILED, "out of memory")}, {"c1", "c2"}, 101.0, T,
                  {})
    assert book.failures[("c1", "bert")].message == "out of memory"
    for now in (102.0, 130.0, 160.9):
        book = settle(book, {}, {"c1", "c2"}, now, T, {})
        sends, book = commands(placement(loads=[("c1", "bert"), ("c2", "bert")]), book, now, T)
        assert [s.instance_id for s in sends if s.first] == (["c2"] if now == 102.0 else [])
    book = settle(book, {}, {"c1", "c2"}, 161.0, T, {})
    sends, _ = commands(placement(loads=[("c1", "bert")]), book, 161.0, T)
    assert [(s.instance_id, s.first) for s in sends] == [("c1", True)]


def test_commands_and_failures_of_an_instance_that_left_the_fleet_are_forgotten():
    book = CommandBook(outstanding={("c1", "bert"): Outstanding("load-1", LOAD, 100.0),
                                    ("c2", "bert"): Outstanding("load-2", LOAD, 100.0)})
    assert list(settle(book, {}, {"c2"}, 101.0, T, {}).outstanding) == [("c2", "bert")]


def test_placement_sees_a_load_in_flight_as_held_with_its_memory_and_an_unload_in_flight_as_gone():
    i = InstanceMemory("c1", "n1", 1000 * MiB, 100 * MiB, frozenset({"old"}), held_bytes={"old": 100 * MiB})
    book = CommandBook(outstanding={("c1", "bert"): Outstanding("l", LOAD, 1.0),
                                    ("c1", "old"): Outstanding("u", UNLOAD, 1.0)})
    [seen] = with_commands_in_flight([i], book, {"bert": 300 * MiB})
    assert seen.models == frozenset({"bert"}) and seen.used_bytes == 400 * MiB
    shown = InstanceMemory("c1", "n1", 1000 * MiB, 400 * MiB, frozenset({"bert"}), held_bytes={"bert": 300 * MiB})
    assert with_commands_in_flight([shown], book, {"bert": 300 * MiB})[0].used_bytes == 400 * MiB  # not twice


def test_the_count_grows_with_placement_counting_starting_instances_and_shrinks_only_once_all_are_seen():
    assert instance_count(3, desired=2, seen=2) == 3
    assert instance_count(2, desired=2, seen=1) == 2  # the starting one is the instance it needs
    assert instance_count(3, desired=2, seen=1) == 3
    assert instance_count(1, desired=2, seen=1) == 2  # hold: the unseen one is about to serve
    assert instance_count(1, desired=2, seen=2) == 1


def sample(instance_id: str, *states: ev.ModelOnInstance) -> ev.TelemetrySample:
    return ev.TelemetrySample(deployment="d", app_id="a", instance_id=instance_id, interval_s=1.0,
                              model_states=list(states))


def ready(name: str, memory: int) -> ev.ModelOnInstance:
    return ev.ModelOnInstance(name=name, state=ev.ModelLoadState.READY, memory_bytes=memory)


PLAN = ModelPlan(models={"bert": ModelTarget(min_copies=1, max_copies=2, memory_bytes=300 * MiB),
                         "resnet": ModelTarget(min_copies=1, max_copies=2, memory_bytes=200 * MiB)})


def fleet(*samples: ev.TelemetrySample, acks=None, desired=2) -> FleetInputs:
    ids = [s.instance_id for s in samples]
    return FleetInputs(samples, {i: f"node-{i}" for i in ids}, acks or {}, set(ids), desired, 1000 * MiB)


def test_a_round_loads_each_models_min_copies_once_and_reports_them_in_flight_until_the_agents_show_them():
    empty = fleet(sample("c1"), sample("c2"))
    first = plan_round(PLAN, empty, {}, CommandBook(), 1, 2, 100.0)
    assert sorted((s.model, s.kind) for s in first.sends) == [("bert", LOAD), ("resnet", LOAD)]
    assert len({s.instance_id for s in first.sends}) == 2  # least loaded first: one each
    lines = {m.name: m for m in first.lines}
    assert lines["bert"].wanted == 1 and lines["bert"].held == [] and len(lines["bert"].loading) == 1
    assert first.desired == 2
    second = plan_round(PLAN, empty, {}, first.book, 1, 2, 101.0)
    assert second.sends == []  # the loads are still in flight

    where = {s.model: s.instance_id for s in first.sends}
    acks = {s.command_id: ack(s.command_id, ev.AckStatus.DONE) for s in first.sends}
    loaded = fleet(*(sample(i, ready(m, 250 * MiB)) for m, i in where.items()), acks=acks)
    third = plan_round(PLAN, loaded, {}, second.book, 1, 2, 102.0)
    assert third.sends == [] and third.book.outstanding == {}
    assert {m.name: (m.held, m.footprint_bytes) for m in third.lines} == {
        "bert": ([where["bert"]], 250 * MiB), "resnet": ([where["resnet"]], 250 * MiB)}


def test_more_copies_wanted_load_the_model_on_the_other_instance_and_a_failure_is_said_with_its_reason():
    loaded = fleet(sample("c1", ready("bert", 300 * MiB)), sample("c2", ready("resnet", 200 * MiB)))
    grown = plan_round(PLAN, loaded, {"bert": 2}, CommandBook(), 1, 2, 100.0)
    assert [(s.instance_id, s.model, s.kind) for s in grown.sends] == [("c2", "bert", LOAD)]
    command_id = grown.sends[0].command_id
    failed = fleet(*loaded.samples, acks={command_id: ack(command_id, ev.AckStatus.FAILED, "no memory")})
    after = plan_round(PLAN, failed, {"bert": 2}, grown.book, 1, 2, 101.0)
    assert after.sends == []
    bert = next(m for m in after.lines if m.name == "bert")
    assert bert.why == ["load on c2 failed: no memory (retried after a delay)"]


def test_a_model_no_fleet_instance_can_hold_twice_asks_for_another_instance_within_max():
    loaded = fleet(sample("c1", ready("bert", 300 * MiB), ready("resnet", 200 * MiB)), desired=1)
    grown = plan_round(PLAN, loaded, {"bert": 2}, CommandBook(), 1, 3, 100.0)
    assert grown.sends == [] and grown.desired == 2
    assert next(m for m in grown.lines if m.name == "bert").missing == 1
    capped = plan_round(PLAN, loaded, {"bert": 2}, CommandBook(), 1, 1, 100.0)
    assert capped.desired == 1 and any("max is 1" in w for w in next(m for m in capped.lines if m.name == "bert").why)


def test_a_ready_instance_without_telemetry_holds_the_round_so_its_models_are_not_loaded_twice():
    # c2 is ready but has not reported (a restarted tarn-am has heard nothing yet): it may hold bert.
    silent = FleetInputs([sample("c1")], {"c1": "n1", "c2": "n2"}, {}, {"c1", "c2"}, 2, 1000 * MiB)
    held = plan_round(PLAN, silent, {}, CommandBook(), 1, 2, 100.0)
    assert held.sends == [] and held.desired == 2
    assert all(m.why == ["waiting for the first telemetry of c2"] for m in held.lines)
    heard = FleetInputs([sample("c1"), sample("c2", ready("bert", 300 * MiB))], silent.node_of, {}, silent.live, 2,
                        1000 * MiB)
    assert [(s.instance_id, s.model) for s in plan_round(PLAN, heard, {}, CommandBook(), 1, 2, 101.0).sends] == [
        ("c1", "resnet")]


def test_rounds_carry_consolidation_load_elsewhere_then_unload_then_offer_the_emptied_instance():
    from tarn_am.model_placement import CALM_ROUNDS
    calm = fleet(sample("c1", ready("bert", 300 * MiB)), sample("c2", ready("resnet", 200 * MiB)))
    decided, t = None, 100.0
    for _ in range(CALM_ROUNDS):
        decided = plan_round(PLAN, calm, {}, decided.book if decided else CommandBook(), 1, 2, t,
                             consolidation=decided.placement.consolidation if decided else Consolidation())
        t += 1
    assert [(s.instance_id, s.model, s.kind) for s in decided.sends] == [("c1", "resnet", LOAD)]
    load = decided.sends[0].command_id
    moved = fleet(sample("c1", ready("bert", 300 * MiB), ready("resnet", 200 * MiB)),
                  sample("c2", ready("resnet", 200 * MiB)), acks={load: ack(load, ev.AckStatus.DONE)})
    decided = plan_round(PLAN, moved, {}, decided.book, 1, 2, t, consolidation=decided.placement.consolidation)
    assert [(s.instance_id, s.model, s.kind) for s in decided.sends] == [("c2", "resnet", UNLOAD)]
    assert decided.placement.release == ("c2",) and decided.desired == 1


def test_no_instance_is_emptied_while_instances_the_target_asked_for_still_start():
    from tarn_am.model_placement import CALM_ROUNDS
    growing = fleet(sample("c1", ready("bert", 300 * MiB)), sample("c2", ready("resnet", 200 * MiB)), desired=3)
    decided = None
    for k in range(CALM_ROUNDS + 2):
        decided = plan_round(PLAN, growing, {}, decided.book if decided else CommandBook(), 1, 3, 100.0 + k,
                             consolidation=decided.placement.consolidation if decided else Consolidation())
        assert decided.sends == [] and decided.desired == 3
