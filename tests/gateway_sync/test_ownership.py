"""Who owns each backend and ZooKeeper path among live deployment records; what a refused
or moved or removed deployment leaves to clean. Pure (ownership.decide_ownership) and the
small state around it (ownership.Claims)."""
from tarn_gateway_sync.ownership import Claims, Ownership, decide_ownership, place_from_key, place_key
from tarn_shared import events as ev
from tarn_shared.claims import haproxy_place, zookeeper_place

ZK = "zk:2181"


def record(name, ts, backend="triton_backend", path="/services/triton/instances", **fields):
    return ev.DeploymentRecord(deployment=name, app_id=f"application_1_{name}", ts=ts, haproxy_backend=backend,
                               zk_path=path, **fields)


def decide(records, previous=Ownership()):
    return decide_ownership({r.deployment: r for r in records}, previous, ZK)


def test_two_deployments_on_their_own_places_each_own_theirs():
    ownership, released = decide([record("a", 1, "ba", "/a"), record("b", 2, "bb", "/b")])
    assert ownership.owners == {haproxy_place("ba"): "a", zookeeper_place(ZK, "/a"): "a",
                                haproxy_place("bb"): "b", zookeeper_place(ZK, "/b"): "b"}
    assert ownership.refused == {} and released == frozenset()


def test_on_the_same_defaults_the_earliest_record_owns_and_the_later_is_refused_both():
    ownership, _ = decide([record("late", 9), record("early", 3)])
    assert set(ownership.owners.values()) == {"early"}
    assert ownership.refused_places("late") == {haproxy_place("triton_backend"),
                                                zookeeper_place(ZK, "/services/triton/instances")}
    assert ownership.refused["late"][haproxy_place("triton_backend")] == "early"


def test_a_clash_on_one_place_refuses_only_that_place():
    ownership, _ = decide([record("a", 1, "shared", "/a"), record("b", 2, "shared", "/b")])
    assert ownership.refused_places("b") == {haproxy_place("shared")}
    assert ownership.owners[zookeeper_place(ZK, "/b")] == "b"


def test_a_path_inside_an_owned_path_is_refused():
    ownership, _ = decide([record("a", 1, "ba", "/services/triton"), record("b", 2, "bb", "/services/triton/b")])
    assert ownership.refused_places("b") == {zookeeper_place(ZK, "/services/triton/b")}


def test_an_owner_keeps_its_place_against_an_earlier_record_that_arrives_later():
    first, _ = decide([record("owner", 10)])
    ownership, released = decide([record("owner", 10), record("older", 1)], first)
    assert set(ownership.owners.values()) == {"owner"} and "older" in ownership.refused and not released


def test_a_removed_record_releases_its_places_and_the_refused_one_takes_them():
    first, _ = decide([record("a", 1), record("b", 2)])
    ownership, released = decide([record("a", 1, removed=True), record("b", 2)], first)
    assert set(ownership.owners.values()) == {"b"} and ownership.refused == {}
    assert released == frozenset()  # b owns them now: its own full reconcile replaces a's servers


def test_a_record_that_moves_releases_its_old_places():
    first, _ = decide([record("a", 1, "old", "/old")])
    ownership, released = decide([record("a", 1, "new", "/new")], first)
    assert released == {haproxy_place("old"), zookeeper_place(ZK, "/old")}
    assert set(ownership.owners) == {haproxy_place("new"), zookeeper_place(ZK, "/new")}


def test_claims_clean_only_places_nobody_owns_and_count_a_refusal_once():
    refusals = []
    claims = Claims(ZK, lambda name, place: refusals.append((name, place.kind)))
    claims.refresh({"a": record("a", 1, "ba", "/a"), "b": record("b", 2, "ba", "/b")})
    claims.refresh({"a": record("a", 1, "ba", "/a"), "b": record("b", 2, "ba", "/b")})
    assert refusals == [("b", "haproxy")] and claims.refused("b") == {haproxy_place("ba")}
    claims.refresh({"b": record("b", 2, "ba", "/b")})  # a gone: b takes the backend, a's path is left
    assert claims.to_clean == {zookeeper_place(ZK, "/a")} and claims.refused("b") == frozenset()
    claims.cleaned(zookeeper_place(ZK, "/a"))
    assert claims.to_clean == set()


def test_a_place_waiting_to_be_cleaned_is_not_cleaned_once_claimed_again():
    claims = Claims(ZK)
    claims.refresh({"a": record("a", 1, "ba", "/a")})
    claims.refresh({})
    assert claims.to_clean == {haproxy_place("ba"), zookeeper_place(ZK, "/a")}
    claims.refresh({"c": record("c", 5, "ba", "/c")})
    assert claims.to_clean == {zookeeper_place(ZK, "/a")}


def test_a_record_the_last_refresh_did_not_see_owns_nothing():
    claims = Claims(ZK)
    claims.refresh({"a": record("a", 1, "ba", "/a")})
    assert claims.owns("a", haproxy_place("ba")) and claims.owns("a", zookeeper_place(ZK, "/a"))
    assert not claims.owns("b", haproxy_place("bb")) and claims.refused("b") == frozenset()


def test_a_restored_ownership_keeps_live_owners_and_cleans_what_moved_or_left_while_no_replica_ran():
    earlier = Claims(ZK)
    earlier.refresh({"a": record("a", 1, "ba", "/a"), "b": record("b", 2, "bb", "/b"), "c": record("c", 3, "bc", "/c")})
    earlier.refresh({"a": record("a", 1, "ba", "/a"), "b": record("b", 2, "bb", "/b")})  # c left, not cleaned yet
    later = Claims(ZK)
    later.restore(earlier.saved())
    # a stayed; b moved; d, earlier than a, now claims a's backend (a keeps it: sticky)
    later.refresh({"a": record("a", 5, "ba", "/a"), "b": record("b", 2, "bnew", "/bnew"),
                   "d": record("d", 0, "ba", "/d")})
    assert later.owns("a", haproxy_place("ba")) and later.refused("d") == {haproxy_place("ba")}
    assert later.to_clean == {haproxy_place("bb"), zookeeper_place(ZK, "/b"),
                              haproxy_place("bc"), zookeeper_place(ZK, "/c")}


def test_place_keys_round_trip_and_unknown_fields_are_left_alone():
    for place in (haproxy_place("triton_backend"), zookeeper_place("h1:2181,h2:2181/chroot", "/services/x")):
        assert place_from_key(place_key(place)) == place
    for junk in ("", "not json", "[1, 2]", '["haproxy", "", ""]', '["ftp", "", "x"]', '{"kind": "haproxy"}'):
        assert place_from_key(junk) is None
