"""Per-model routing's pure parts (model_routes): which models get a slot backend, what the
model map must say, which servers each slot backend serves."""
from __future__ import annotations

from tarn_gateway_sync.model_routes import (ModelHolders, ModelLayout, assign_slots, find_layout, is_slot_of,
                                            plan_map, slot_backends, slot_intent, MapChange)
from tarn_gateway_sync.model_unrouted import RouteAways, pair_counts
from tarn_gateway_sync.plan import RoutingIntent, Target
from tarn_shared import events as ev
from tarn_shared.membership import Member

SLOTS = ("b_model_0", "b_model_1")


def member(port: int, *models: str) -> Member:
    return Member(f"c{port}", ev.InstanceState.READY, 1, ev.Endpoints(host="10.0.0.1", http_port=port), models)


def target(port: int) -> Target:
    return Target(f"10.0.0.1:{port}", "10.0.0.1", port)


def test_slot_backends_are_found_by_name_in_slot_order_and_need_a_map_file():
    names = ["b", "b_model_10", "b_model_2", "b_models", "other_model_0", "b_model_x"]
    assert slot_backends("b", names) == ("b_model_2", "b_model_10")
    assert find_layout("b", names, ["/etc/haproxy/b.models.map", "/etc/other.map"]) == \
        ModelLayout("/etc/haproxy/b.models.map", ("b_model_2", "b_model_10"))
    assert find_layout("b", names, ["/etc/haproxy/c.models.map"]) is None
    assert find_layout("c", names, ["/x/c.models.map"]) is None


def test_only_slot_backends_of_allowed_backends_are_allowed():
    assert is_slot_of("b_model_3", {"b"})
    assert not is_slot_of("c_model_3", {"b"})
    assert not is_slot_of("b_model_", {"b"}) and not is_slot_of("b", {"b"})


def test_each_held_model_gets_its_own_slot_and_keeps_it():
    wanted, overflow = assign_slots({"a", "b"}, {}, SLOTS)
    assert wanted == {"a": "b_model_0", "b": "b_model_1"} and overflow == ()
    again, _ = assign_slots({"a", "b"}, {"b": "b_model_0", "a": "b_model_1"}, SLOTS)
    assert again == {"b": "b_model_0", "a": "b_model_1"}


def test_a_model_without_a_copy_keeps_its_slot_until_a_held_model_needs_it():
    wanted, overflow = assign_slots({"a"}, {"a": "b_model_0", "gone": "b_model_1"}, SLOTS)
    assert wanted == {"a": "b_model_0", "gone": "b_model_1"} and overflow == ()  # 503 for "gone", not a fall-back
    wanted, overflow = assign_slots({"a", "new"}, {"a": "b_model_0", "gone": "b_model_1"}, SLOTS)
    assert wanted == {"a": "b_model_0", "new": "b_model_1"} and overflow == ()


def test_models_beyond_the_slots_are_reported_and_get_no_entry():
    wanted, overflow = assign_slots({"a", "b", "c"}, {"c": "b_model_1"}, SLOTS)
    assert wanted == {"c": "b_model_1", "a": "b_model_0"} and overflow == ("b",)


def test_map_entries_to_a_slot_that_no_longer_exists_or_twice_are_dropped():
    wanted, _ = assign_slots({"a", "b"}, {"a": "b_model_7", "b": "b_model_0", "x": "b_model_0"}, SLOTS)
    assert wanted == {"b": "b_model_0", "a": "b_model_1"}


def test_the_map_plan_deletes_first_then_adds_and_sets():
    assert plan_map({"old": "s0", "a": "s1", "b": "s2"}, {"a": "s1", "b": "s0", "c": "s2"}) == [
        MapChange("del", "old"), MapChange("set", "b", "s0"), MapChange("add", "c", "s2")]
    assert plan_map({"a": "s1"}, {"a": "s1"}) == []


def test_holders_follow_each_instances_ready_models_and_say_which_models_changed():
    holders = ModelHolders()
    assert holders.update({"10.0.0.1:1": member(1, "a"), "10.0.0.1:2": member(2, "b")}, None) == {"a", "b"}
    assert holders.holding("a") == {"10.0.0.1:1"}
    # A loads on instance 2: only "a" changed.
    assert holders.update({"10.0.0.1:2": member(2, "a", "b")}, {"10.0.0.1:2"}) == {"a"}
    assert holders.holding("a") == {"10.0.0.1:1", "10.0.0.1:2"}
    # Instance 1 leaves (no longer routable in its scope): its models changed, and "a" is held by 2 only.
    assert holders.update({}, {"10.0.0.1:1"}) == {"a"}
    assert holders.holding("a") == {"10.0.0.1:2"} and holders.models() == {"a", "b"}


def test_names_that_cannot_be_map_keys_are_not_routed_per_model():
    holders = ModelHolders()
    holders.update({"10.0.0.1:1": member(1, "ok_model-1.v2", "bad name", "x;del")}, None)
    assert holders.models() == {"ok_model-1.v2"}


def test_a_slot_serves_its_holders_and_drains_instances_that_no_longer_hold_its_model():
    main = RoutingIntent(desired={t.address: t for t in (target(1), target(2))},
                         draining={target(3).address: target(3)}, gone={target(4).address: target(4)},
                         authoritative=True)
    intent = slot_intent({target(1).address: target(1)}, main)
    assert set(intent.desired) == {target(1).address}
    assert set(intent.draining) == {target(2).address, target(3).address}  # 2 unloaded it: route away gently
    assert set(intent.gone) == {target(4).address} and intent.authoritative


# ---------------------------------------------------------------- route away before unload

A1, A2 = "10.0.0.1:1", "10.0.0.1:2"


def test_a_model_an_instance_stops_listing_is_pending_until_zero_is_announced():
    aways = RouteAways()
    aways.observe({A1: ("a", "b")}, {A1: member(1, "a")})
    assert aways.addresses() == {A1} and aways.models_at({A1}) == {"b"} and aways.models_at({A2}) == set()
    assert aways.due({}) == [] and aways.due({(A1, "b"): None}) == []  # not counted yet
    [(pair, who, count)] = aways.due({(A1, "b"): 2})
    assert pair == (A1, "b") and who.instance_id == "c1" and count == 2
    aways.sent(pair, 2)
    assert aways.due({(A1, "b"): 2}) == []  # announced once per count
    aways.sent(pair, 0)
    assert aways.addresses() == set()


def test_a_route_away_is_forgotten_when_the_model_comes_back_or_the_instance_leaves():
    aways = RouteAways()
    aways.observe({A1: ("a", "b"), A2: ("a",)}, {A1: member(1, "a"), A2: member(2)})
    aways.observe({A1: ("a",)}, {A1: member(1, "a", "b")})  # loaded again
    assert aways.addresses() == {A2}
    aways.observe({A2: ()}, {})  # no longer ready: the instance drain takes over
    assert aways.addresses() == set()


def test_open_requests_are_summed_over_every_haproxy_and_unknown_if_one_does_not_know():
    pairs = {(A1, "b")}
    assert pair_counts(pairs, [({"b"}, {"b": {A1: 1}}), ({"b"}, {"b": {A1: 2}})]) == {(A1, "b"): 3}
    assert pair_counts(pairs, [({"b"}, {"b": {A1: 1}}), None]) == {(A1, "b"): None}  # one failed
    assert pair_counts(pairs, [({"b"}, {"b": {A1: None}})]) == {(A1, "b"): None}  # still ready there
    assert pair_counts(pairs, [({"b"}, {})]) == {(A1, "b"): None}  # its slot not synced this round
    # No slot for it (not routed per model there, or slots ran out): nothing held for it there.
    assert pair_counts(pairs, [(None, {}), ({"a"}, {"a": {A1: 5}})]) == {(A1, "b"): 0}
