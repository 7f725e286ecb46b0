"""GPU readings through the real NVML: real numbers with a GPU, "unavailable" (never zeros)
without; and the GPUs a real agent gives a real tritonserver. The decisions are tested over
plain data in test_gpu_allocation/test_gpu_readings."""
import pytest

from tarn_shared import events as ev
from tarn_node_agent.agent_metrics import AgentStatus, build_registry
from tarn_node_agent.nvml import GpuReader
from tests.node_agent.test_agent import start_agent, triton_child_environ  # noqa: F401 - the fixture


def test_without_a_gpu_the_reading_is_unavailable_with_a_reason_not_zeros():
    reader = GpuReader()
    reading = reader.read()
    if reading.available:
        pytest.skip("this machine has a GPU")
    assert reading.gpus is None and reading.error and not reading.mig_devices
    registry = build_registry(AgentStatus(), reader.read)
    assert registry.get_sample_value("tarn_node_agent_gpu_available") == 0.0
    assert registry.get_sample_value("tarn_node_agent_gpu_utilization_percent", {"gpu": "0"}) is None


def test_without_nvml_the_selection_is_unverified_and_leaves_triton_alone():
    reader = GpuReader()
    inventory, reason = reader.inventory()
    if inventory:
        pytest.skip("this machine has a GPU")
    selection = reader.select({})
    assert selection.targets is None and selection.reason == reason and selection.env_changes == {}
    assert reader.read().error  # still unavailable, with its reason


@pytest.mark.gpu
def test_with_a_gpu_the_allocated_gpus_utilization_and_memory_are_read():
    reader = GpuReader()
    inventory, error = reader.inventory()
    if not inventory:
        pytest.skip(f"no GPU here: {error}")
    selection = reader.select({})
    reading = reader.read()
    assert reading.available, reading.error
    assert len(reading.gpus) + len(reading.mig_devices) + len(reading.unreadable) == len(selection.targets)
    assert all(0 <= s.utilization_pct <= 100 and 0 < s.memory_total_bytes for s in reading.gpus)
    assert all(s.memory_used_bytes <= s.memory_total_bytes for s in reading.gpus + reading.mig_devices)
    first = selection.targets[0]
    only = reader.select({"CUDA_VISIBLE_DEVICES": first.uuid})
    assert [t.label for t in only.targets] == [first.label]
    assert only.env_changes["CUDA_VISIBLE_DEVICES"] == first.uuid


@pytest.mark.integration
@pytest.mark.hadoop
def test_the_agent_gives_triton_the_containers_gpus(start_agent, hdfs_models, deployment):
    agent = start_agent(f"hdfs://{hdfs_models}", env={"CUDA_VISIBLE_DEVICES": "0"})

    agent.wait_for(lambda e: isinstance(e, ev.InstanceReady), ev.lifecycle_stream(deployment), what="instance.ready")
    triton_env = triton_child_environ(agent.process.pid)
    if GpuReader().inventory()[0]:  # NVML resolved it: the GPU's UUID, whatever CUDA's order
        assert triton_env["CUDA_VISIBLE_DEVICES"].startswith(("GPU-", "MIG-"))
    else:  # passed as given, with CUDA counting like nvidia-smi
        assert triton_env["CUDA_VISIBLE_DEVICES"] == "0" and triton_env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "GPUs chosen" in agent.log_tail(1000)


@pytest.mark.integration
@pytest.mark.hadoop
def test_a_gpu_list_that_cannot_be_stops_the_agent_before_staging(start_agent, hdfs_models, deployment):
    agent = start_agent(f"hdfs://{hdfs_models}", env={"CUDA_VISIBLE_DEVICES": "0,gpu1"})

    stopped = agent.wait_for(lambda e: isinstance(e, ev.InstanceStopped), ev.lifecycle_stream(deployment), 60)
    assert stopped.reason == ("configuration: CUDA_VISIBLE_DEVICES='0,gpu1': 'gpu1' is not a GPU index, "
                              "GPU-/MIG- UUID, <gpu>:<mig>, all or none")
    assert agent.process.wait(30) == 2
    assert "staged" not in agent.log_tail(1000).lower()
