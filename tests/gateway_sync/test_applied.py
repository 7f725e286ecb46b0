"""What gateway-sync remembers it applied to each gateway (pure), so an event's sync plans
from memory; and a reconcile's read merged with what applies changed while it was read."""
from tarn_gateway_sync.applied import (VERIFY_ROUNDS, AppliedBackend, AppliedZnodes, merged, merged_znodes,
                                       observed_spread, to_verify)
from tarn_gateway_sync.plan import (AddServer, Admin, ClearSlot, CreateZnode, DeleteZnode, DrainClock, DrainServer,
                                    FillSlot, Layout, ObservedZnode, ReadyServer, RemoveServer, RoutingIntent, ServerState,
                                    Target,
                                    plan_haproxy)


def server(name, port, admin=Admin.READY, ip="10.0.0.1"):
    return ServerState(name, ip, port, admin, True)


def target(port):
    return Target(f"10.0.0.1:{port}", "10.0.0.1", port)


def test_executed_actions_change_the_remembered_servers_and_name_what_they_changed():
    applied = AppliedBackend(Layout.DYNAMIC, [server("tarn-a", 1), server("tarn-b", 2)], "triton-")
    changed = applied.record([AddServer("tarn-c", "10.0.0.1", 3), DrainServer("tarn-a"), RemoveServer("tarn-b")])
    assert changed == {"tarn-a", "tarn-b", "tarn-c"}
    assert {n: (s.port, s.admin) for n, s in applied.servers.items()} == {"tarn-a": (1, Admin.DRAIN),
                                                                          "tarn-c": (3, Admin.READY)}
    assert [s.name for s in applied.around([("10.0.0.1", 1), ("10.0.0.1", 2)], 0)] == ["tarn-a"]


def test_a_plan_scoped_to_an_event_from_memory_matches_the_plan_from_a_full_read():
    fleet = [server(f"tarn-{p}", p) for p in range(1, 200)]
    applied = AppliedBackend(Layout.DYNAMIC, fleet, "triton-")
    intent = RoutingIntent(desired={t.address: t for t in map(target, range(2, 201))},
                           draining={}, gone={target(1).address: target(1)}, authoritative=True)
    scope = {target(1).address, target(200).address}
    scoped = RoutingIntent(desired={target(200).address: target(200)}, draining={},
                           gone={target(1).address: target(1)}, authoritative=True)
    from_memory = plan_haproxy(Layout.DYNAMIC, scoped, applied.around([("10.0.0.1", 1), ("10.0.0.1", 200)], 1),
                               now=0, clock=DrainClock(), drain_timeout_s=5, scope=scope)[0]
    from_read = plan_haproxy(Layout.DYNAMIC, intent, fleet, now=0, clock=DrainClock(), drain_timeout_s=5,
                             scope=scope)[0]
    assert from_memory == from_read == [RemoveServer("tarn-1"), AddServer("tarn-10.0.0.1:200", "10.0.0.1", 200)]


def test_memory_of_slots_offers_only_as_many_empty_slots_as_a_plan_can_fill():
    slots = [server(f"triton-{n}", 8000, Admin.MAINT, ip="0.0.0.0") for n in range(1, 6)]
    applied = AppliedBackend(Layout.SLOTS, slots, "triton-")
    assert [s.name for s in applied.around([], 2)] == ["triton-1", "triton-2"]
    applied.record([FillSlot("triton-1", "10.0.0.1", 7), ClearSlot("triton-2")])
    assert [s.name for s in applied.around([("10.0.0.1", 7)], 1)] == ["triton-1", "triton-2"]


def test_a_reconciles_read_yields_to_what_an_apply_changed_while_it_was_read():
    applied = AppliedBackend(Layout.DYNAMIC, [], "triton-")
    applied.record([AddServer("tarn-new", "10.0.0.1", 9)])
    read = [server("tarn-old", 1), server("tarn-gone", 2)]
    result = merged(read, {"tarn-new", "tarn-gone"}, applied)  # added and removed during the read
    assert sorted(s.name for s in result) == ["tarn-new", "tarn-old"]

    znodes = AppliedZnodes(7, {})
    znodes.record([CreateZnode("h:1", b"x"), DeleteZnode("h:2")])
    fresh = {"h:2": ObservedZnode("h:2", b"y", 7), "h:3": ObservedZnode("h:3", b"z", 7)}
    assert sorted(merged_znodes(fresh, {"h:1", "h:2"}, znodes)) == ["h:1", "h:3"]
    assert znodes.nodes["h:1"].ephemeral_owner == 7


def test_memory_keeps_haproxys_id_of_a_server_it_drains_of_a_slot_it_fills_and_of_a_new_one():
    applied = AppliedBackend(Layout.DYNAMIC, [ServerState("tarn-a", "10.0.0.1", 1, Admin.READY, True, srv_id=7),
                                              ServerState("triton-1", "0.0.0.0", 8000, Admin.MAINT, False, srv_id=3)],
                             "triton-")
    applied.record(applied.with_ids([DrainServer("tarn-a"), FillSlot("triton-1", "10.0.0.1", 2),
                                     AddServer("tarn-c", "10.0.0.1", 3)]))
    applied.with_sessions({"tarn-a": 4})
    assert {n: (s.srv_id, s.sessions) for n, s in applied.servers.items()} == \
        {"tarn-a": (7, 4), "triton-1": (3, 0), "tarn-c": (8, 0)}


def test_new_servers_take_ids_above_all_known_and_reuse_those_of_removed_servers():
    applied = AppliedBackend(Layout.DYNAMIC, [ServerState("tarn-a", "10.0.0.1", 1, Admin.READY, True, srv_id=5),
                                              ServerState("static", "10.0.0.9", 1, Admin.READY, True, srv_id=2)],
                             "triton-")
    first = applied.with_ids([AddServer("tarn-b", "10.0.0.2", 1), AddServer("tarn-c", "10.0.0.3", 1)])
    assert [a.srv_id for a in first] == [6, 7]
    applied.record(first)
    applied.record([DrainServer("tarn-a"), RemoveServer("tarn-a"), RemoveServer("tarn-c")])
    again = applied.with_ids([AddServer("tarn-d", "10.0.0.4", 1), AddServer("tarn-e", "10.0.0.5", 1),
                              AddServer("tarn-f", "10.0.0.6", 1), ReadyServer("tarn-b")])
    assert [getattr(a, "srv_id", None) for a in again] == [5, 7, 8, None]  # churn never grows the ids


def test_a_full_read_reads_every_znode_it_did_not_write_and_each_it_wrote_once_in_ten_rounds():
    written = AppliedZnodes(7, {f"h:{i}": ObservedZnode(f"h:{i}", b"x", 7) for i in range(1000)})
    children = [f"h:{i}" for i in range(1000)] + ["stray:1"]
    rounds = [set(to_verify(children, written, r)) for r in range(VERIFY_ROUNDS)]
    assert all("stray:1" in asked for asked in rounds)
    assert set().union(*rounds) == set(children)  # each read within VERIFY_ROUNDS reconciles
    assert max(len(asked) for asked in rounds) < 200  # about a tenth each round, not all of them
    assert to_verify(children, None, 3) == children  # nothing written in this session: read all


def test_a_spread_read_keeps_what_was_written_for_the_unread_and_drops_what_vanished():
    written = AppliedZnodes(7, {n: ObservedZnode(n, b"ours", 7) for n in ("h:1", "h:2", "h:3")})
    read = {"h:2": ObservedZnode("h:2", b"changed by hand", 7)}
    observed = observed_spread(["h:1", "h:2", "h:4"], read, ["h:2", "h:4"], written)
    # h:3 is gone from the children, h:4 was asked for but deleted meanwhile: neither is seen.
    assert observed == {"h:1": written.nodes["h:1"], "h:2": read["h:2"]}
