"""What gateway-sync lets through from Redis, without servers: records allowed by its own
settings only, instances with clean endpoints only, each refusal counted and logged once
per version."""
import logging

import pytest
from prometheus_client import CollectorRegistry

from tarn_gateway_sync.admission import Allowlist, Gate, admitted_lifecycle, place_refusal, record_refusal
from tarn_gateway_sync.haproxy import HaproxyCommandError, RuntimeApi
from tarn_gateway_sync.sync_metrics import Metrics
from tarn_shared import events as ev
from tarn_shared.claims import haproxy_place, zookeeper_place
from tarn_shared.errors import UnavailableError

OWN = "zk1:2181,zk2:2181/tarn"
OTHER = "zk9:2181"
ALLOWED = Allowlist.of(["triton_backend", "triton_slots"], [OWN, OTHER], ["/services/triton"])


def record(**fields):
    return ev.DeploymentRecord(deployment="d", app_id="app", **fields)


def reason(**fields):
    refusal = record_refusal(record(**fields), ALLOWED, OWN)
    return refusal.reason if refusal else None


def test_a_record_within_the_settings_is_admitted():
    assert reason() is None and reason(zk_ensemble="") is None  # its own ensemble, the default path and backend
    assert reason(zk_ensemble="ZK2:2181,zk1:2181/tarn", zk_path="/services/triton/a") is None  # same ensemble
    assert reason(zk_ensemble="zk1:2181,zk2:2181", zk_path="/tarn/services/triton/a") is None  # the chroot folded in
    assert reason(zk_ensemble=OTHER, haproxy_backend="triton_slots") is None  # listed


@pytest.mark.parametrize("fields, expected", [
    ({"haproxy_backend": "x; del server triton_backend/tarn-1"}, "backend"),
    ({"haproxy_backend": "triton_backend\nshow info"}, "backend"),
    ({"haproxy_backend": "other_backend"}, "backend_not_allowed"),
    ({"zk_ensemble": "evil:2181"}, "zk_ensemble_not_allowed"),
    ({"zk_ensemble": "zk1:2181"}, "zk_ensemble_not_allowed"),  # a part of the ensemble is another ensemble
    ({"zk_ensemble": "zk1:2181;rm"}, "zk_ensemble"),
    ({"zk_path": "/services/triton/../../zookeeper"}, "zk_path"),
    ({"zk_path": "/services//triton"}, "zk_path"),
    ({"zk_path": "/services/tritonx/instances"}, "zk_path_not_allowed"),
    ({"zk_path": "/zookeeper/quota"}, "zk_path_not_allowed"),
    # Outside the chroot: the same hosts without it, a path that does not go through it.
    ({"zk_ensemble": "zk1:2181,zk2:2181", "zk_path": "/services/triton/instances"}, "zk_path_not_allowed"),
])
def test_a_hostile_or_foreign_record_is_refused_with_its_reason(fields, expected):
    assert reason(**fields) == expected


def test_an_allowed_place_is_located_on_the_configured_connection_within_its_chroot():
    assert ALLOWED.locate(zookeeper_place("zk2:2181,zk1:2181", "/tarn/services/triton/x")) == \
        (OWN, "/services/triton/x")
    assert ALLOWED.locate(zookeeper_place(OTHER, "/services/triton")) == (OTHER, "/services/triton")
    assert ALLOWED.locate(zookeeper_place(OTHER, "/services")) is None


def test_a_stored_place_outside_the_settings_is_refused():
    assert place_refusal(haproxy_place("triton_backend"), ALLOWED) is None
    assert place_refusal(haproxy_place("x; del server a/b"), ALLOWED).reason == "backend_not_allowed"
    assert place_refusal(zookeeper_place(OWN, "/services/triton/a"), ALLOWED) is None
    assert place_refusal(zookeeper_place("evil:1", "/services/triton/a"), ALLOWED).reason == "zk_path_not_allowed"


def endpoints(host, port=8000):
    return ev.Endpoints(host=host, http_port=port)


def test_an_instance_with_a_hostile_host_is_taken_out_and_a_snapshot_keeps_the_others():
    bad = ev.InstanceReady(deployment="d", app_id="a", instance_id="c1", seq=3, endpoints=endpoints("h/../x"))
    assert admitted_lifecycle(bad)[0] is None and admitted_lifecycle(bad)[1][0][:2] == ("c1", 3)
    good = bad.model_copy(update={"endpoints": endpoints("10.0.0.1")})
    assert admitted_lifecycle(good) == (good, ())
    members = [ev.MemberState(instance_id=f"c{n}", state=ev.InstanceState.READY, seq=1, endpoints=endpoints(h))
               for n, h in enumerate(["10.0.0.1", "x;del", "node-2"])]
    snapshot = ev.MembershipSnapshot(deployment="d", app_id="a", snapshot_seq=1, desired_count=3, members=members)
    admitted, refused = admitted_lifecycle(snapshot)
    assert [m.instance_id for m in admitted.members] == ["c0", "c2"] and [r[0] for r in refused] == ["c1"]


def test_a_delta_with_a_hostile_member_keeps_the_others_and_its_removals():
    members = [ev.MemberState(instance_id=f"c{n}", state=ev.InstanceState.READY, seq=1, endpoints=endpoints(h))
               for n, h in enumerate(["10.0.0.1", "x;del"])]
    delta = ev.MembershipDelta(deployment="d", app_id="a", snapshot_seq=2, full_seq=1, desired_count=2,
                               members=members, removed=["c9"])
    admitted, refused = admitted_lifecycle(delta)
    assert [m.instance_id for m in admitted.members] == ["c0"] and admitted.removed == ["c9"]
    assert [r[0] for r in refused] == ["c1"]


def test_a_refusal_is_counted_and_logged_once_per_version(caplog):
    registry = CollectorRegistry()
    gate = Gate(ALLOWED, OWN, Metrics(registry).refused)
    hostile = record(haproxy_backend="x; del server b/s", ts=1.0)
    with caplog.at_level(logging.WARNING, logger="tarn_gateway_sync.admission"):
        assert gate.refuses_record(hostile)
        assert gate.refuses_record(hostile.model_copy(update={"event_id": "republished"}))
        assert gate.refuses_record(hostile.model_copy(update={"ts": 2.0}))  # a new version
        assert not gate.refuses_record(record())
    value = registry.get_sample_value("tarn_gateway_sync_refused_total", {"what": "record", "reason": "backend"})
    assert value == 2 and len([r for r in caplog.records if "refused" in r.getMessage()]) == 2
    assert "'x; del server b/s'" in caplog.records[0].getMessage()  # the hostile value is shown escaped


def test_a_record_of_a_deployment_not_served_is_not_refused_nor_counted():
    registry = CollectorRegistry()
    gate = Gate(ALLOWED, OWN, Metrics(registry).refused, only=["mine"])
    assert not gate.refuses_record(record(haproxy_backend="x;y"))  # "d" is not served: record_change drops it
    assert registry.get_sample_value("tarn_gateway_sync_refused_total", {"what": "record", "reason": "backend"}) \
        is None


@pytest.mark.anyio
async def test_a_command_holding_a_separator_is_never_sent():
    api = RuntimeApi("/nonexistent/haproxy.sock")  # sending anything would fail as unreachable
    for line in ("show servers state b; del server b/s", "show info\nshutdown frontend f", "x\r", "x\x00"):
        with pytest.raises(HaproxyCommandError, match="separator"):
            await api.command(line)
    with pytest.raises(UnavailableError):
        await api.command("show info")
