"""A real node-agent process serving a local model repository in place (no HDFS), with the
real tritonserver, on the test's Redis; and clients that keep a model busy through HAProxy."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import redis

from tarn_shared import events as ev
from tests.support.polling import wait_for
from tests.support.ports import free_ports
from tests.support.processes import terminate
from tests.support.triton import triton_runtime

ROOT = Path(__file__).resolve().parents[2]


class AgentProcess:
    def __init__(self, workdir: Path, redis_url: str, deployment: str, container_id: str, repository: Path,
                 extra: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None) -> None:
        runtime = triton_runtime()
        workdir.mkdir(parents=True, exist_ok=True)
        self.http, self.grpc, self.metrics, self.port = free_ports(4)
        self.container_id = container_id
        self.deployment = deployment
        self.redis = redis.Redis.from_url(redis_url)
        self.log_path = workdir / "agent.log"
        environ = runtime.environment()
        environ.pop("HADOOP_CONF_DIR", None)  # no NodeManager kill delay unless the test gives one
        environ.update(env or {})
        environ["TARN_NODE_AGENT_TRITON_ARGS"] = (
            f"--backend-directory={runtime.backend_directory} "
            f"--backend-config=python,shm-region-prefix-name=na{os.getpid()}x{self.http}")
        argv = [sys.executable, "-m", "tarn_node_agent", "--container-id", container_id, "--deployment", deployment,
                "--model-repository", str(repository), "--staging-dir", str(workdir / "staging"),
                "--overlay-dir", str(workdir / "overlay"), "--tritonserver", str(runtime.binary),
                "--triton-bind", "127.0.0.1", "--advertise-host", "127.0.0.1",
                "--http-port", str(self.http), "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics),
                "--agent-port", str(self.port), "--redis-url", redis_url, "--telemetry-interval-s", "1",
                "--heartbeat-interval-s", "1", "--log-json", "false", *(extra or [])]
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=workdir, env=environ, stdout=self.log, stderr=subprocess.STDOUT)
        self.triton_pid: Optional[int] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.http}"

    def lifecycle(self) -> List[ev.Event]:
        return [ev.decode(fields) for _, fields in self.redis.xrange(ev.lifecycle_stream(self.deployment))]

    def mine(self, kind) -> List[ev.Event]:
        return [e for e in self.lifecycle() if isinstance(e, kind) and e.instance_id == self.container_id]

    def wait_for(self, kind, timeout_s: float = 120.0, what: str = ""):
        def found():
            exited = self.process.poll() is not None  # before reading: what it published is there
            events = self.mine(kind)
            if events:
                return events[-1]
            if exited:
                raise AssertionError(f"agent exited ({self.process.returncode}) before {what or kind}:\n"
                                     f"{self.log_tail()}")
            return None

        return wait_for(found, timeout_s, message=lambda: f"{what or kind}:\n{self.log_tail()}", interval_s=0.1)

    def wait_ready(self) -> ev.InstanceReady:
        ready = self.wait_for(ev.InstanceReady, what="instance.ready")
        self.triton_pid = _tritonserver_child(self.process.pid)
        return ready

    def command(self, command: ev.Command) -> None:
        self.redis.xadd(ev.commands_stream(self.deployment, self.container_id), ev.encode(command))

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        terminate(self.process, timeout_s=30)
        if self.triton_pid is not None:  # Triton runs in its own session: never leave it behind
            try:
                os.killpg(self.triton_pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.close()
        self.redis.close()


def _tritonserver_child(agent_pid: int) -> int:
    for child in Path(f"/proc/{agent_pid}/task/{agent_pid}/children").read_text().split():
        if "tritonserver" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
            return int(child)
    raise AssertionError(f"no tritonserver among the children of agent {agent_pid}")


