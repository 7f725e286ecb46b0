"""One real TARN deployment on the minicluster, shared by the integration tests of this folder.

``tarn submit`` (the real CLI, in a subprocess with the minicluster's environment) runs
tarn-am in the AM container and the real node-agent with the real tritonserver (the
nvidia-pytriton build) in the Triton containers, serving tests/models staged from HDFS.
"""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import httpx
import pytest

from tests.hadoop.cluster import HadoopCluster
from tests.support.ports import free_ports
from tests.support.triton import triton_runtime
from tests.support.triton_fixture import MODELS_DIR

REPO = Path(__file__).resolve().parents[2]
TARN = str(Path(sys.executable).parent / "tarn")
TOKEN = "am-test-token"


@dataclass
class Deployment:
    name: str
    app_id: str
    address: str
    env: Dict[str, str]
    submitted_at: float
    submit_s: float
    cluster: HadoopCluster
    hdfs_models: str = ""  # its repository on HDFS

    def http(self, token: Optional[str] = TOKEN) -> httpx.Client:
        headers = {"X-TARN-Token": token} if token else {}
        return httpx.Client(base_url=self.address, headers=headers, timeout=10, trust_env=False)

    def state(self) -> dict:
        with self.http() as http:
            return http.get("/api/state").raise_for_status().json()

    def tarn(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([TARN, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"tarn {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result


def upload_models(webhdfs_client, hdfs_dir: str, models_dir: Path = MODELS_DIR) -> None:
    for path in models_dir.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = f"{hdfs_dir}/{path.relative_to(models_dir)}"
            webhdfs_client.upload(target, str(path), overwrite=True)


def agent_runtime_env() -> Dict[str, str]:
    """How the node-agent runs the bundled tritonserver with python-backend models."""
    runtime = triton_runtime()
    env = runtime.environment(base={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    backend = f"--backend-directory={runtime.backend_directory}"
    return {
        "TARN_NODE_AGENT_TRITON_ARGS": backend,
        "LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"],
        "PATH": env["PATH"],
        "TARN_NODE_AGENT_EXIT_TIMEOUT_S": "5",
        "TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S": "2",
        "TARN_NODE_AGENT_DRAIN_UNROUTED_TIMEOUT_S": "3",
    }


# Module scope: its containers hold the minicluster's GPUs and memory, so it goes when tests/am is done.
@pytest.fixture(scope="module")
def am_deployment(hadoop_cluster: HadoopCluster, webhdfs, stack) -> Iterator[Deployment]:  # noqa: F811
    yield from submitted(hadoop_cluster, webhdfs, stack)


def submitted(hadoop_cluster: HadoopCluster, webhdfs, stack, instances: int = 1, max_instances: int = 3,
              autoscale: bool = False, agent_env: Optional[Dict[str, str]] = None,
              authz_url: Optional[str] = None, extra_args: Sequence[str] = (),
              models_dir: Path = MODELS_DIR, hdfs_models: Optional[str] = None) -> Iterator[Deployment]:
    """Submit one deployment of ``instances`` (also its minimum), yield it, kill it afterwards.
    Without ``autoscale`` it is submitted with --no-autoscale; ``agent_env`` adds to the agents';
    ``extra_args`` come last, so they override the flags here. ``hdfs_models``: a repository
    already on HDFS (another deployment's), else ``models_dir`` is uploaded for this one."""
    name = f"am{uuid.uuid4().hex[:8]}"
    hdfs_dir = hdfs_models or f"/tarn-test/{name}/models"
    if hdfs_models is None:
        upload_models(webhdfs, hdfs_dir, models_dir)
    http_port, grpc_port, metrics_port = free_ports(3)
    env = dict(hadoop_cluster.env)
    env["TARN_TOKEN"] = TOKEN
    args = [
        "submit", "--name", name, "--runtime", "process",
        "--model-repository", f"{hadoop_cluster.default_fs}{hdfs_dir}",
        "--redis-url", stack.env["REDIS_URL"], "--am-port", "0", "--address", "0.0.0.0",
        "--port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
        "--min-instances", str(instances), "--max-instances", str(max_instances), "--drain-timeout", "20",
        "--container-memory", "1024", "--container-vcores", "1", "--am-memory", "512",
        "--tritonserver", str(triton_runtime().binary), "--wait", "180",
    ]
    if not autoscale:
        args.append("--no-autoscale")
    if authz_url:
        args += ["--authz-url", authz_url]
    for key, value in {**agent_runtime_env(), **(agent_env or {})}.items():
        args += ["--agent-env", f"{key}={value}"]
    args += list(extra_args)
    started = time.monotonic()
    submitted_at = time.time()
    result = subprocess.run([TARN, *args], env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"tarn submit failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}")
    lines = result.stdout.splitlines()
    app_id = lines[0].split()[1]
    address = lines[-1].split(" at ")[1].split(" ")[0]
    deployment = Deployment(name, app_id, address, env, submitted_at, time.monotonic() - started, hadoop_cluster,
                            hdfs_dir)
    try:
        yield deployment
    finally:
        hadoop_cluster.kill_application(app_id)


def holders(state: dict) -> Dict[str, List[str]]:
    """Each model's instances (from tarn-am's /api/state) by the agents' own ready announcements,
    not the AM's plan."""
    out: Dict[str, List[str]] = {}
    for row in state["instances"]:
        for model in row.get("models") or ():
            out.setdefault(model, []).append(row["instance_id"])
    return {k: sorted(v) for k, v in out.items()}
