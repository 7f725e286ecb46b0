"""The pure diff of desired against observed gateways."""
from tarn_gateway_sync.plan import (AddServer, Admin, ClearSlot, CreateZnode, DeleteZnode, DrainClock, DrainServer,
                                    FillSlot, Layout, ObservedZnode, ReadyServer, RemoveServer, ReplaceZnode,
                                    RoutingIntent, ServerState, SlotsExhausted, Target, detect_layout, plan_haproxy,
                                    plan_znodes)


def target(port, ip="10.0.0.1"):
    return Target(f"{ip}:{port}", ip, port)


def intent(desired=(), draining=(), gone=(), authoritative=False):
    as_map = lambda ts: {t.address: t for t in ts}  # noqa: E731
    return RoutingIntent(as_map(desired), as_map(draining), as_map(gone), authoritative)


def server(name, port, admin=Admin.READY, ip="10.0.0.1", sessions=0):
    return ServerState(name, ip, port, admin, True, sessions)


def plan(layout, wanted, observed, now=100.0, clock=DrainClock(), scope=None):
    return plan_haproxy(layout, wanted, observed, now=now, clock=clock, drain_timeout_s=30, scope=scope)


def slots(*held):
    """Eight slots; ``held`` maps slot number -> (port, admin)."""
    held = dict(held)
    return [server(f"triton-{n}", held[n][0], held[n][1]) if n in held
            else ServerState(f"triton-{n}", "0.0.0.0", 8000, Admin.MAINT, False) for n in range(1, 9)]


def test_a_new_ready_instance_becomes_a_dynamic_server():
    actions, _ = plan(Layout.DYNAMIC, intent([target(8000)]), [])
    assert actions == [AddServer("tarn-10.0.0.1:8000", "10.0.0.1", 8000)]


def test_nothing_is_done_when_haproxy_already_matches():
    actions, _ = plan(Layout.DYNAMIC, intent([target(8000)], authoritative=True), [server("tarn-10.0.0.1:8000", 8000)])
    assert actions == []


def test_a_server_left_in_maintenance_is_made_ready_again():
    actions, _ = plan(Layout.DYNAMIC, intent([target(8000)]), [server("tarn-x", 8000, Admin.MAINT)])
    assert actions == [ReadyServer("tarn-x")]


def test_duplicate_servers_for_one_instance_are_removed():
    actions, _ = plan(Layout.DYNAMIC, intent([target(8000)]), [server("tarn-a", 8000), server("tarn-b", 8000)])
    assert actions == [RemoveServer("tarn-b")]


def test_an_unknown_server_stays_until_the_view_is_authoritative():
    observed = [server("tarn-old", 9000)]
    assert plan(Layout.DYNAMIC, intent(), observed)[0] == []
    assert plan(Layout.DYNAMIC, intent(authoritative=True), observed)[0] == [RemoveServer("tarn-old")]


def test_servers_gateway_sync_does_not_own_are_left_alone():
    assert plan(Layout.DYNAMIC, intent(authoritative=True), [server("static-1", 9000)])[0] == []


def test_a_stopped_instance_is_removed_even_before_a_snapshot():
    actions, _ = plan(Layout.DYNAMIC, intent(gone=[target(9000)]), [server("tarn-9000", 9000)])
    assert actions == [RemoveServer("tarn-9000")]


def test_a_draining_instance_is_drained_then_removed_once_it_has_no_sessions():
    wanted = intent(draining=[target(9000)])
    actions, clock = plan(Layout.DYNAMIC, wanted, [server("tarn-s", 9000)], now=100)
    assert actions == [DrainServer("tarn-s")] and clock.since == {"tarn-s": 100}
    actions, clock = plan(Layout.DYNAMIC, wanted, [server("tarn-s", 9000, Admin.DRAIN, sessions=3)], now=110, clock=clock)
    assert actions == [] and clock.since == {"tarn-s": 100}
    actions, _ = plan(Layout.DYNAMIC, wanted, [server("tarn-s", 9000, Admin.DRAIN, sessions=0)], now=111, clock=clock)
    assert actions == [RemoveServer("tarn-s")]


def test_a_drain_that_never_empties_ends_at_the_timeout():
    wanted = intent(draining=[target(9000)])
    busy = [server("tarn-s", 9000, Admin.DRAIN, sessions=5)]
    assert plan(Layout.DYNAMIC, wanted, busy, now=129, clock=DrainClock({"tarn-s": 100}))[0] == []
    assert plan(Layout.DYNAMIC, wanted, busy, now=130, clock=DrainClock({"tarn-s": 100}))[0] == [RemoveServer("tarn-s")]


def test_a_scoped_plan_touches_only_its_addresses():
    wanted = intent([target(8000), target(8001)], gone=[target(9000)], authoritative=True)
    actions, _ = plan(Layout.DYNAMIC, wanted, [server("tarn-9000", 9000), server("tarn-x", 7000)],
                      scope={"10.0.0.1:8001"})
    assert actions == [AddServer("tarn-10.0.0.1:8001", "10.0.0.1", 8001)]


def test_slots_are_filled_in_order_and_freed_slots_reused():
    actions, _ = plan(Layout.SLOTS, intent([target(8000), target(8001)], gone=[target(9000)]),
                      slots((1, (9000, Admin.READY))))
    assert actions == [ClearSlot("triton-1"), FillSlot("triton-1", "10.0.0.1", 8000),
                       FillSlot("triton-2", "10.0.0.1", 8001)]


def test_running_out_of_slots_is_reported_with_the_addresses_left_out():
    held = [(n, (8000 + n, Admin.READY)) for n in range(1, 9)]
    wanted = intent([target(8000 + n) for n in range(1, 11)])
    actions, _ = plan(Layout.SLOTS, wanted, slots(*held))
    assert actions == [SlotsExhausted(("10.0.0.1:8009", "10.0.0.1:8010"))]


def test_a_slot_layout_is_recognised_by_its_placeholder_names():
    assert detect_layout(slots(), "triton-") is Layout.SLOTS
    assert detect_layout([server("tarn-a", 1)], "triton-") is Layout.DYNAMIC


def test_a_znode_is_created_for_each_routable_instance_and_deleted_when_it_leaves():
    observed = {"b:1": ObservedZnode("b:1", b"x", 7)}
    actions = plan_znodes({"a:1": b"{}"}, {"b:1"}, observed, session_id=7, authoritative=False)
    assert actions == [CreateZnode("a:1", b"{}"), DeleteZnode("b:1")]


def test_a_znode_of_another_session_or_with_stale_data_is_replaced():
    observed = {"a:1": ObservedZnode("a:1", b"{}", 6), "b:1": ObservedZnode("b:1", b"old", 7)}
    actions = plan_znodes({"a:1": b"{}", "b:1": b"new"}, set(), observed, session_id=7, authoritative=True)
    assert actions == [ReplaceZnode("a:1", b"{}"), ReplaceZnode("b:1", b"new")]


def test_an_unknown_znode_survives_until_the_view_is_authoritative():
    observed = {"z:1": ObservedZnode("z:1", b"{}", 7)}
    assert plan_znodes({}, set(), observed, session_id=7, authoritative=False) == []
    assert plan_znodes({}, set(), observed, session_id=7, authoritative=True) == [DeleteZnode("z:1")]

