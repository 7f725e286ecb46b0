"""GPU readings through NVML: real numbers with a GPU, "unavailable" (never zeros) without."""
import pytest

from tarn_node_agent.agent_metrics import AgentStatus, build_registry
from tarn_node_agent.nvml import GpuReader


def test_without_a_gpu_the_reading_is_unavailable_with_a_reason_not_zeros():
    samples, error = GpuReader().read()
    if samples:
        pytest.skip("this machine has a GPU")
    assert samples is None and error
    registry = build_registry(AgentStatus(), GpuReader().read)
    assert registry.get_sample_value("tarn_node_agent_gpu_available") == 0.0
    assert registry.get_sample_value("tarn_node_agent_gpu_utilization_percent", {"gpu": "0"}) is None


@pytest.mark.gpu
def test_with_a_gpu_utilization_and_memory_are_read():
    samples, error = GpuReader().read()
    if samples is None:
        pytest.skip(f"no GPU here: {error}")
    assert all(0 <= s.utilization_pct <= 100 and 0 < s.memory_total_bytes for s in samples)
    assert all(s.memory_used_bytes <= s.memory_total_bytes for s in samples)
