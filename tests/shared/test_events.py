import json

import pytest

from tarn_shared import events as ev
from tarn_shared.errors import SchemaError, UnsupportedVersion

ENDPOINTS = ev.Endpoints(host="node1", http_port=8000, grpc_port=8001, metrics_port=8002)
COMMON = {"deployment": "triton"}


def one_of_each():
    inst = dict(COMMON, app_id="application_1_0001", instance_id="container_1", seq=3,
                endpoints=ENDPOINTS, models=["identity"])
    cont = dict(COMMON, app_id="application_1_0001", container_id="container_1", host="node1", service="triton-0")
    cmd = dict(COMMON, app_id="application_1_0001", container_id="container_1")
    return [
        ev.DeploymentRecord(**COMMON, app_id="application_1_0001", zk_ensemble="zk:2181", ranger_service="triton"),
        ev.ContainerRequested(**COMMON, app_id="application_1_0001", service="triton-0", reason="scale up"),
        ev.ContainerRunning(**cont),
        ev.ContainerCompleted(**cont, exit_status=0),
        ev.ContainerFailed(**cont, exit_status=137, diagnostics="killed", restarts=2),
        ev.InstanceReady(**inst),
        ev.InstanceUnready(**inst, reason="probe failed"),
        ev.InstanceDraining(**inst, command_id="c1", timeout_s=30),
        ev.InstanceUnrouted(**inst),
        ev.InstanceStopped(**inst, exit_code=0, reason="drained"),
        ev.ModelUnrouted(**COMMON, app_id="a", instance_id="container_1", seq=3, model="identity", open_requests=0),
        ev.ModelDemanded(**COMMON, model="identity", backend="triton_backend"),
        ev.InstanceHeartbeat(**COMMON, app_id="a", instance_id="container_1", seq=3, state=ev.InstanceState.READY),
        ev.MembershipSnapshot(**COMMON, app_id="a", snapshot_seq=7, lifecycle_through="1-0", desired_count=2,
                              members=[ev.MemberState(instance_id="container_1", state="ready", seq=3,
                                                      endpoints=ENDPOINTS, models=["identity"])]),
        ev.MembershipDelta(**COMMON, app_id="a", snapshot_seq=8, full_seq=7, lifecycle_through="2-0",
                           desired_count=2, removed=["container_2"],
                           members=[ev.MemberState(instance_id="container_1", state="draining", seq=4,
                                                   endpoints=ENDPOINTS, models=["identity"])]),
        ev.TelemetrySample(**COMMON, app_id="a", instance_id="container_1", interval_s=2.0, load=0.5,
                           models=[ev.ModelSample(name="identity", request_rate_per_s=10,
                                                  queue_time_per_request_us=120, pending_requests=1)],
                           gpus=[ev.GpuSample(index=0, utilization_pct=40, memory_used_bytes=1,
                                              memory_total_bytes=2)]),
        ev.DrainCommand(**cmd, timeout_s=30),
        ev.LoadModelCommand(**cmd, model="identity"),
        ev.UnloadModelCommand(**cmd, model="identity"),
        ev.CommandAck(**cmd, command_id="c1", command_type="command.drain", status=ev.AckStatus.DONE),
        ev.AuditDecision(**COMMON, repo="triton", reqUser="alice", evtTime="2026-01-01 00:00:00.000",
                         access="infer", resource="identity", action="infer", result=1, agent="tarn", policy=4),
    ]


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: e.type)
def test_every_event_type_survives_a_round_trip_through_stream_fields(event):
    fields = ev.encode(event)
    wire = {k.encode(): v.encode() for k, v in fields.items()}  # as redis-py returns them
    assert ev.decode(wire) == event


def test_every_registered_event_type_is_covered_by_the_round_trip():
    assert {e.type for e in one_of_each()} == set(ev.event_types())


def test_a_newer_minor_version_with_an_unknown_field_is_accepted():
    payload = json.loads(ev.encode(one_of_each()[5])[ev.ENTRY_FIELD])
    payload.update(schema_version="1.7", added_in_1_7={"anything": True})
    decoded = ev.decode({ev.ENTRY_FIELD: json.dumps(payload)})
    assert isinstance(decoded, ev.InstanceReady)
    assert decoded.instance_id == "container_1"


@pytest.mark.parametrize("version", ["2.0", "0.9", "x", None])
def test_an_unknown_major_version_is_rejected_as_unsupported(version):
    payload = json.loads(ev.encode(one_of_each()[5])[ev.ENTRY_FIELD])
    payload["schema_version"] = version
    with pytest.raises(UnsupportedVersion):
        ev.decode({ev.ENTRY_FIELD: json.dumps(payload)})


@pytest.mark.parametrize("fields, message", [
    ({}, "no 'event' field"),
    ({"event": "{not json"}, "not JSON"),
    ({"event": "[1, 2]"}, "not a JSON object"),
    ({"event": json.dumps({"type": "nope", "schema_version": "1.0"})}, "unknown event type"),
    ({"event": json.dumps({"type": "instance.ready", "schema_version": "1.0", "deployment": "d"})}, "invalid instance.ready"),
    ({b"event": b"\xff\xfe"}, "not JSON"),
])
def test_malformed_entries_raise_a_schema_error_that_says_what_is_wrong(fields, message):
    with pytest.raises(SchemaError, match=message):
        ev.decode(fields)


def test_stream_names_are_keyed_by_the_deployment_name():
    assert ev.lifecycle_stream("triton") == "tarn:triton:lifecycle"
    assert ev.telemetry_stream("triton") == "tarn:triton:telemetry"
    assert ev.commands_stream("triton", "container_e01_1") == "tarn:triton:commands:container_e01_1"
    assert ev.acks_stream("triton") == "tarn:triton:acks"
    assert ev.dead_letter_stream(ev.lifecycle_stream("triton")) == "tarn:triton:lifecycle:dead"


@pytest.mark.parametrize("bad", ["", "a:b", "with space"])
def test_a_deployment_name_that_would_make_keys_ambiguous_is_refused(bad):
    with pytest.raises(ValueError, match="invalid name"):
        ev.lifecycle_stream(bad)


def test_an_endpoint_address_is_host_colon_http_port():
    assert ENDPOINTS.address == "node1:8000"


def test_unavailable_gpus_are_none_not_zeros():
    sample = ev.TelemetrySample(deployment="d", app_id="a", instance_id="c", interval_s=2,
                                gpu_error="NVML Shared Library Not Found")
    assert sample.gpus is None and "NVML" in sample.gpu_error
