"""One reading of the allocated GPUs, aggregated purely from per-device readings: a failing
device is reported unreadable while the others still count; MIG devices count with their memory."""
from tarn_shared import events as ev
from tarn_node_agent.agent_metrics import AgentStatus, build_registry
from tarn_node_agent.gpu_devices import DeviceReading, Target, aggregate
from tarn_node_agent.telemetry import normalized_load

GIB = 1 << 30
GPU0 = Target(gpu_index=0, gpu_uuid="GPU-a", name="A100")
GPU1 = Target(gpu_index=1, gpu_uuid="GPU-b", name="A100")
MIG = [Target(gpu_index=2, gpu_uuid="GPU-c", mig_index=i, mig_uuid=f"MIG-{i}") for i in range(2)]
TARGETS = dict(target_queue_time_us=100_000, target_pending_requests=8, target_gpu_utilization_pct=80)


def whole(target, util, used=GIB):
    return DeviceReading(target, utilization_pct=util, memory_used_bytes=used, memory_total_bytes=80 * GIB)


def test_one_failing_gpu_is_listed_unreadable_and_the_others_are_still_read():
    reading = aggregate([whole(GPU0, 40.0), DeviceReading(GPU1, error="NVML: GPU is lost")], {"1": 3})
    assert [g.index for g in reading.gpus] == [0] and reading.gpus[0].utilization_pct == 40.0
    assert [(u.index, u.uuid, u.error) for u in reading.unreadable] == [(1, "GPU-b", "NVML: GPU is lost")]
    assert reading.error is None and reading.available and reading.failed
    assert reading.failures_total == {"1": 3}


def test_when_every_allocated_gpu_fails_the_reading_is_unavailable_with_each_reason():
    reading = aggregate([DeviceReading(GPU0, error="NVML: Unknown Error"), DeviceReading(GPU1, error="NVML: GPU is lost")])
    assert reading.gpus is None and not reading.available and reading.failed
    assert reading.error == "no allocated GPU could be read (0: NVML: Unknown Error; 1: NVML: GPU is lost)"


def test_mig_devices_count_one_by_one_with_their_own_memory():
    reading = aggregate([whole(GPU0, 10.0)] + [
        DeviceReading(t, memory_used_bytes=(i + 1) * GIB, memory_total_bytes=10 * GIB) for i, t in enumerate(MIG)])
    assert len(reading.gpus) == 1 and len(reading.mig_devices) == 2
    assert [(m.gpu_index, m.mig_index, m.uuid, m.gpu_uuid, m.memory_used_bytes) for m in reading.mig_devices] == [
        (2, 0, "MIG-0", "GPU-c", GIB), (2, 1, "MIG-1", "GPU-c", 2 * GIB)]
    assert all(m.memory_total_bytes == 10 * GIB for m in reading.mig_devices)


def test_a_mig_only_container_is_readable_and_its_load_has_no_gpu_term():
    reading = aggregate([DeviceReading(t, memory_used_bytes=GIB, memory_total_bytes=10 * GIB) for t in MIG])
    assert reading.gpus == [] and reading.available and reading.error is None and not reading.failed
    models = [ev.ModelSample(name="m", request_rate_per_s=10, queue_time_per_request_us=50_000)]
    assert normalized_load(models, reading.gpus, **TARGETS) == 0.5


def test_a_container_without_gpus_is_unavailable_but_not_a_failure():
    reading = aggregate([])
    assert reading.gpus is None and reading.none_allocated and not reading.failed
    assert reading.error == "no GPU allocated to this container"


def test_a_reading_without_memory_or_a_target_known_broken_is_unreadable():
    broken = Target(gpu_index=3, gpu_uuid="GPU-d", error="MIG mode is on but the GPU has no MIG device")
    reading = aggregate([whole(GPU0, 5.0), DeviceReading(GPU1, utilization_pct=5.0), DeviceReading(broken)])
    assert [(u.index, u.error) for u in reading.unreadable] == [
        (1, "no memory reading"), (3, "MIG mode is on but the GPU has no MIG device")]


def test_the_agents_metrics_show_each_device_and_each_unreadable_one():
    reading = aggregate([whole(GPU0, 55.0, used=2 * GIB), DeviceReading(GPU1, error="NVML: GPU is lost"),
                         DeviceReading(MIG[1], memory_used_bytes=GIB, memory_total_bytes=10 * GIB)], {"1": 4})
    registry = build_registry(AgentStatus(), lambda: reading)
    value = registry.get_sample_value
    assert value("tarn_node_agent_gpu_available") == 1.0
    assert [value("tarn_node_agent_gpu_devices", {"kind": k}) for k in ("gpu", "mig", "unreadable")] == [1, 1, 1]
    assert value("tarn_node_agent_gpu_utilization_percent", {"gpu": "0"}) == 55.0
    assert value("tarn_node_agent_gpu_utilization_percent", {"gpu": "1"}) is None  # unreadable, never 0
    assert value("tarn_node_agent_gpu_unreadable", {"gpu": "1"}) == 1.0
    assert value("tarn_node_agent_gpu_read_failures_total", {"gpu": "1"}) == 4
    assert value("tarn_node_agent_gpu_memory_used_bytes", {"gpu": "2:1"}) == GIB
    assert value("tarn_node_agent_gpu_memory_total_bytes", {"gpu": "0"}) == 80 * GIB


def test_the_telemetry_sample_carries_mig_devices_and_unreadable_gpus_through_the_stream_encoding():
    reading = aggregate([DeviceReading(GPU1, error="NVML: GPU is lost"),
                         DeviceReading(MIG[0], memory_used_bytes=GIB, memory_total_bytes=10 * GIB)])
    sample = ev.TelemetrySample(deployment="d", app_id="a", instance_id="c", interval_s=2.0, gpus=reading.gpus,
                                gpu_error=reading.error, mig_devices=reading.mig_devices,
                                gpus_unreadable=reading.unreadable)
    back = ev.decode(ev.encode(sample))
    assert back.mig_devices == reading.mig_devices and back.gpus_unreadable == reading.unreadable
    assert back.gpus == []
