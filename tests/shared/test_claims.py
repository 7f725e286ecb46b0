"""The places a deployment claims, and which claims clash (tarn_shared.claims). Pure."""
from tarn_shared import events as ev
from tarn_shared.claims import (HAPROXY, ZOOKEEPER, first_clash, haproxy_place, overlaps, places_of,
                                zookeeper_place)


def record(name, ts=1.0, **fields):
    return ev.DeploymentRecord(deployment=name, app_id=f"application_1_{name}", ts=ts, **fields)


def test_a_record_claims_its_backend_and_its_path_on_its_ensemble():
    backend, znodes = places_of(record("a", haproxy_backend="b1", zk_ensemble="zk2:2181,ZK1:2181/tarn",
                                       zk_path="/services/x"))
    assert (backend.kind, backend.name) == (HAPROXY, "b1")
    assert (znodes.kind, znodes.ensemble, znodes.name) == (ZOOKEEPER, "zk1:2181,zk2:2181", "/tarn/services/x")


def test_the_chroot_and_host_order_do_not_make_one_place_two():
    assert zookeeper_place("a:1,b:1/root", "/p") == zookeeper_place("b:1,a:1", "/root/p/")


def test_no_ensemble_stands_for_the_default_one_when_it_is_known():
    assert places_of(record("a"), "zk:2181")[1] == zookeeper_place("zk:2181", ev.DeploymentRecord.model_fields[
        "zk_path"].default)
    assert places_of(record("a"))[1].ensemble == ""


def test_paths_clash_when_equal_or_nested_on_one_ensemble_only():
    outer = zookeeper_place("zk:1", "/services/triton")
    assert overlaps(outer, zookeeper_place("zk:1", "/services/triton/instances"))
    assert overlaps(zookeeper_place("zk:1", "/services/triton/instances"), outer)
    assert not overlaps(outer, zookeeper_place("zk:1", "/services/tritonx"))
    assert not overlaps(outer, zookeeper_place("other:1", "/services/triton"))
    assert not overlaps(haproxy_place("a"), haproxy_place("b"))
    assert overlaps(haproxy_place("a"), haproxy_place("a"))
    assert not overlaps(haproxy_place("/services/triton"), outer)


def test_the_first_clash_names_the_earliest_claimant():
    mine = places_of(record("new", zk_path="/other"))
    later, earlier = record("later", ts=5.0), record("earlier", ts=2.0)
    place, owner = first_clash(mine, [later, earlier])
    assert place == haproxy_place("triton_backend") and owner.deployment == "earlier"
    assert first_clash(places_of(record("n", haproxy_backend="x", zk_path="/y")), [later, earlier]) is None
