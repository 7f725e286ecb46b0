"""Loads and unloads in explicit model control against a real tritonserver: each model's
state, its measured memory (the Triton process group's RSS on this CPU-only machine) and
its load time."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tarn_shared import events as ev
from tarn_node_agent.errors import TritonError
from tarn_node_agent.model_loads import ModelLoads
from tarn_node_agent.model_memory import MemoryReading
from tarn_node_agent.process_memory import group_rss_bytes
from tarn_node_agent.triton import TritonApi

pytestmark = [pytest.mark.integration]
MIB = 1 << 20
HOG_MIB = 256

HOG_MODEL = f'''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.weights = b"\\x01" * ({HOG_MIB} * 1024 * 1024)  # written, so resident

    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
            "OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]) for r in requests]
'''


def add_hog(repository: Path) -> None:
    (repository / "hog" / "1").mkdir(parents=True)
    config = (repository / "identity" / "config.pbtxt").read_text().replace('name: "identity"', 'name: "hog"')
    (repository / "hog" / "config.pbtxt").write_text(config)
    (repository / "hog" / "1" / "model.py").write_text(HOG_MODEL)


async def until(predicate, loads: ModelLoads, timeout_s: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        states = {s.name: s for s in await loads.refresh()}
        if predicate(states):
            return states
        assert asyncio.get_running_loop().time() < deadline, f"timed out; states: {states}"
        await asyncio.sleep(0.2)


def test_a_load_reports_ready_with_its_measured_memory_and_time_and_an_unload_removes_it(
        start_triton, triton_model_repo):
    add_hog(triton_model_repo)
    server = start_triton(triton_model_repo, model_control_mode="explicit")

    async def scenario():
        host, port = server.http_host_port.rsplit(":", 1)
        api = TritonApi(host, int(port), server.ports.metrics, timeout_s=10.0)
        loads = ModelLoads(api, lambda: MemoryReading(group_rss_bytes(server.pid)))
        try:
            assert await loads.refresh() == []  # explicit mode: nothing loaded at start
            hog = await loads.load("hog")
            assert hog.state == ev.ModelLoadState.READY and hog.memory_source == "rss"
            # the stub process holding 256 MiB of weights joins Triton's group
            assert HOG_MIB * MIB <= hog.memory_bytes <= (HOG_MIB + 512) * MIB, hog
            assert 0 < hog.load_time_s < 60
            small = await loads.load("identity")
            assert small.memory_bytes < hog.memory_bytes - 128 * MIB, (small, hog)
            assert [s.name for s in await loads.refresh()] == ["hog", "identity"]
            assert (await loads.refresh())[0].memory_bytes == hog.memory_bytes  # kept across refreshes
            assert (await loads.load("hog")).memory_bytes == hog.memory_bytes  # a reload keeps the first measure

            with pytest.raises(TritonError, match="nope"):
                await loads.load("nope")
            failed = {s.name: s for s in loads.states()}["nope"]
            assert failed.state == ev.ModelLoadState.FAILED and "nope" in failed.error

            unloading = await loads.unload("hog")
            assert unloading.state == ev.ModelLoadState.UNLOADING
            states = await until(lambda s: "hog" not in s, loads)
            assert states["identity"].state == ev.ModelLoadState.READY
        finally:
            await api.close()

    asyncio.run(scenario())
