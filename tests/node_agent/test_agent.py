"""The node-agent as YARN runs it: a process staging from HDFS, starting a real tritonserver,
talking through a real Redis. The tests play the AM and gateway-sync on the streams."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
import redis
import tritonclient.http as httpclient

from tarn_shared import events as ev
from tests.hadoop.cluster import create_jceks
from tests.support.polling import wait_for
from tests.support.processes import terminate
from tests.support.ports import free_ports
from tests.support.triton import triton_runtime

pytestmark = [pytest.mark.integration, pytest.mark.hadoop]
ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "container_1700000000000_0042_01_000002"


class Agent:
    def __init__(self, tmp_path: Path, redis_url: str, deployment: str, cluster, repository: str,
                 extra: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None) -> None:
        runtime = triton_runtime()
        self.http, self.grpc, self.metrics, self.port = free_ports(4)
        self.deployment = deployment
        self.redis = redis.Redis.from_url(redis_url)
        self.log_path = tmp_path / "agent.log"
        environ = runtime.environment()
        environ.update(env or {})
        environ["TARN_NODE_AGENT_TRITON_ARGS"] = (
            f"--backend-directory={runtime.backend_directory} "
            f"--backend-config=python,shm-region-prefix-name=na{os.getpid()}x{self.http}")
        argv = [sys.executable, "-m", "tarn_node_agent", "--container-id", CONTAINER, "--deployment", deployment,
                "--model-repository", repository, "--webhdfs-url", cluster.webhdfs_url, "--hdfs-user", "root",
                "--staging-dir", str(tmp_path / "staging"), "--tritonserver", str(runtime.binary),
                "--triton-bind", "127.0.0.1", "--advertise-host", "127.0.0.1",
                "--http-port", str(self.http), "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics),
                "--agent-port", str(self.port), "--redis-url", redis_url, "--exit-timeout-s", "10",
                "--telemetry-interval-s", "0.5", "--heartbeat-interval-s", "1", "--log-json", "false",
                *(extra or [])]
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=ROOT, env=environ, stdout=self.log, stderr=subprocess.STDOUT)

    def events(self, stream: str) -> List[ev.Event]:
        return [ev.decode(fields) for _, fields in self.redis.xrange(stream)]

    def lifecycle(self) -> List[ev.Event]:
        return self.events(ev.lifecycle_stream(self.deployment))

    def wait_for(self, predicate, stream: str, timeout_s: float = 120.0, what: str = "event"):
        def found():
            exited = self.process.poll() is not None  # before reading: what it published is there
            matching = [e for e in self.events(stream) if predicate(e)]
            if matching:
                return matching[0]
            if exited and stream != ev.acks_stream(self.deployment):
                raise AssertionError(f"agent exited ({self.process.returncode}) before {what}:\n{self.log_tail()}")
            return None

        return wait_for(found, timeout_s, message=lambda: f"{what}:\n{self.log_tail()}", interval_s=0.1)

    def command(self, command: ev.Command) -> None:
        self.redis.xadd(ev.commands_stream(self.deployment, CONTAINER), ev.encode(command))

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        terminate(self.process, timeout_s=30)
        self.log.close()
        self.redis.close()


@pytest.fixture
def start_agent(tmp_path, redis_url, deployment, hadoop_cluster):
    agents: List[Agent] = []

    def start(repository: str, **kwargs) -> Agent:
        agent = Agent(tmp_path / f"a{len(agents)}", redis_url, deployment, hadoop_cluster, repository, **kwargs)
        agents.append(agent)
        return agent

    for path in [tmp_path / "a0", tmp_path / "a1"]:
        path.mkdir()
    yield start
    for agent in agents:
        agent.stop()


def infer_identity(port: int, values: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    try:
        tensor = httpclient.InferInput("INPUT0", list(values.shape), "FP32")
        tensor.set_data_from_numpy(values)
        return client.infer("identity", [tensor]).as_numpy("OUTPUT0")
    finally:
        client.close()


def triton_child_environ(agent_pid: int) -> Dict[str, str]:
    children = Path(f"/proc/{agent_pid}/task/{agent_pid}/children").read_text().split()
    for child in children:
        if "tritonserver" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
            raw = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
    raise AssertionError(f"no tritonserver among the agent's children {children}")


def test_staged_ready_serving_reporting_commanded_and_drained_without_losing_a_request(
        start_agent, hadoop_cluster, hdfs_models, hdfs_dir, deployment):
    secrets = create_jceks(hadoop_cluster, f"{hdfs_dir}/secrets.jceks",
                           {"huggingface.token": "hf_TOPSECRET", "tarn.env.tarn_test_flag": "on"})
    agent = start_agent(f"hdfs://{hdfs_models}", extra=[
        "--secrets", secrets, "--model-control-mode", "explicit", "--load-models", "identity"])
    lifecycle, telemetry, acks = (ev.lifecycle_stream(deployment), ev.telemetry_stream(deployment),
                                  ev.acks_stream(deployment))

    # Ready, announced with its endpoints and the models Triton loaded.
    ready = agent.wait_for(lambda e: isinstance(e, ev.InstanceReady), lifecycle, what="instance.ready")
    assert ready.endpoints.http_port == agent.http and ready.endpoints.grpc_port == agent.grpc
    assert ready.models == ["identity"] and ready.app_id == "application_1700000000000_0042"

    # Secrets reach Triton's environment only.
    triton_env = triton_child_environ(agent.process.pid)
    assert triton_env["HUGGING_FACE_HUB_TOKEN"] == "hf_TOPSECRET" and triton_env["TARN_TEST_FLAG"] == "on"
    assert "hf_TOPSECRET" not in agent.log_tail(100000)
    assert all("hf_TOPSECRET" not in json.dumps(fields.get(b"event", b"").decode())
               for _, fields in agent.redis.xrange(lifecycle))

    # Inference, and telemetry that sees it.
    values = np.arange(8, dtype=np.float32)
    sent_at = time.time()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a steady load across several telemetry intervals
        np.testing.assert_array_equal(infer_identity(agent.http, values), values)
        time.sleep(0.01)
    sample = agent.wait_for(lambda e: isinstance(e, ev.TelemetrySample) and e.ts > sent_at and any(
        m.name == "identity" and m.request_rate_per_s > 1 for m in e.models), telemetry, 30, "telemetry with requests")
    assert sample.gpus is None and sample.gpu_error  # no GPU here: unavailable, not zeros
    agent.wait_for(lambda e: isinstance(e, ev.InstanceHeartbeat) and e.state == ev.InstanceState.READY,
                   telemetry, 10, "heartbeat")

    # Its own endpoints.
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/healthz", timeout=5) as response:
        assert json.load(response)["state"] == "ready"
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert "tarn_node_agent_triton_up 1.0" in text and "tarn_node_agent_staging_duration_seconds" in text
    assert "tarn_node_agent_gpu_available 0.0" in text

    # Load and unload through Triton's repository API, each acknowledged.
    load = ev.LoadModelCommand(deployment=deployment, app_id="a", container_id=CONTAINER, model="add_sub")
    agent.command(load)
    ack = agent.wait_for(lambda e: isinstance(e, ev.CommandAck) and e.command_id == load.command_id, acks, 60)
    assert ack.status == ev.AckStatus.DONE
    agent.wait_for(lambda e: isinstance(e, ev.InstanceReady) and e.models == ["add_sub", "identity"], lifecycle, 10)
    missing = ev.LoadModelCommand(deployment=deployment, app_id="a", container_id=CONTAINER, model="nope")
    unload = ev.UnloadModelCommand(deployment=deployment, app_id="a", container_id=CONTAINER, model="add_sub")
    agent.command(missing)
    agent.command(unload)
    failed = agent.wait_for(lambda e: isinstance(e, ev.CommandAck) and e.command_id == missing.command_id, acks, 60)
    assert failed.status == ev.AckStatus.FAILED and "nope" in failed.message
    done = agent.wait_for(lambda e: isinstance(e, ev.CommandAck) and e.command_id == unload.command_id, acks, 60)
    assert done.status == ev.AckStatus.DONE

    # Drain under concurrent load: clients keep sending until gateway-sync would have
    # unrouted the instance; every request sent must succeed.
    stop_sending = threading.Event()
    results = {"ok": 0, "failed": [], "after_drain": 0}
    drain_sent = threading.Event()

    def client_loop():
        while not stop_sending.is_set():
            try:
                infer_identity(agent.http, values)
                results["ok"] += 1
                if drain_sent.is_set():
                    results["after_drain"] += 1
            except Exception as exc:  # noqa: BLE001 - counted and asserted below
                results["failed"].append(repr(exc))

    clients = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(1.0)
    drain = ev.DrainCommand(deployment=deployment, app_id="a", container_id=CONTAINER, timeout_s=60)
    agent.command(drain)
    drain_sent.set()
    draining = agent.wait_for(lambda e: isinstance(e, ev.InstanceDraining), lifecycle, 30, "instance.draining")
    assert draining.command_id == drain.command_id and draining.seq > ready.seq
    time.sleep(1.0)  # gateway-sync takes a moment; requests keep arriving meanwhile
    stop_sending.set()
    for thread in clients:
        thread.join(30)
    time.sleep(0.5)
    assert agent.process.poll() is None, "Triton must not stop before the instance is unrouted"
    agent.redis.xadd(lifecycle, ev.encode(ev.InstanceUnrouted(
        deployment=deployment, app_id=draining.app_id, instance_id=CONTAINER, seq=draining.seq,
        endpoints=draining.endpoints)))

    stopped = agent.wait_for(lambda e: isinstance(e, ev.InstanceStopped), lifecycle, 60, "instance.stopped")
    assert stopped.exit_code == 0 and stopped.reason.startswith("drained: unrouted")
    done = agent.wait_for(lambda e: isinstance(e, ev.CommandAck) and e.command_id == drain.command_id
                          and e.status == ev.AckStatus.DONE, acks, 30, "drain done")
    assert agent.process.wait(30) == 0
    assert results["failed"] == [] and results["after_drain"] > 0, results
    seqs = [e.seq for e in agent.lifecycle() if isinstance(e, ev.InstanceEvent)
            and not isinstance(e, ev.InstanceUnrouted)]  # the agent's own events
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_a_missing_repository_stops_the_agent_with_a_clear_reason(start_agent, hdfs_dir, deployment):
    agent = start_agent(f"hdfs://{hdfs_dir}/not-there")

    stopped = agent.wait_for(lambda e: isinstance(e, ev.InstanceStopped), ev.lifecycle_stream(deployment), 60)
    assert stopped.reason == f"hdfs path {hdfs_dir}/not-there does not exist"
    assert agent.process.wait(30) == 3


def test_a_corrupt_credential_file_stops_the_agent_with_a_clear_reason(start_agent, webhdfs, hdfs_models, hdfs_dir,
                                                                        deployment):
    webhdfs.write(f"{hdfs_dir}/bad.jceks", data=b"\xce\xce\x00\x02garbage")
    agent = start_agent(f"hdfs://{hdfs_models}", extra=["--secrets", f"hdfs://{hdfs_dir}/bad.jceks"])

    stopped = agent.wait_for(lambda e: isinstance(e, ev.InstanceStopped), ev.lifecycle_stream(deployment), 60)
    assert "is not a readable JCEKS keystore" in stopped.reason or "wrong store password" in stopped.reason
    assert agent.process.wait(30) == 3


def test_triton_failing_to_start_is_reported_with_its_exit_code(start_agent, webhdfs, hdfs_models, deployment):
    config = f"{hdfs_models}/identity/config.pbtxt"
    with webhdfs.read(config) as reader:
        text = reader.read()
    webhdfs.write(config, data=text.replace(b"TYPE_FP32", b"TYPE_NOT_A_TYPE", 1), overwrite=True)
    agent = start_agent(f"hdfs://{hdfs_models}")

    stopped = agent.wait_for(lambda e: isinstance(e, ev.InstanceStopped), ev.lifecycle_stream(deployment), 120)
    assert stopped.exit_code not in (None, 0)
    assert stopped.reason == f"tritonserver exited with code {stopped.exit_code} before it was ready"
    assert agent.process.wait(30) == stopped.exit_code


def test_invalid_settings_exit_at_once_with_one_message():
    result = subprocess.run([sys.executable, "-m", "tarn_node_agent", "--model-repository", "models/rel",
                             "--container-id", CONTAINER], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tarn-node-agent: invalid settings: model_repository (TARN_NODE_AGENT_MODEL_REPOSITORY): "
        "Value error, expected an hdfs:// URI or an absolute path"] or "expected an hdfs:// URI" in result.stderr
