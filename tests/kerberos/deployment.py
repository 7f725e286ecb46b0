"""The session's one Kerberized demo deployment, on the session's Kerberized stack
(conftest.py's ``secure_stack`` and ``kerberos_deployment``): `deploy/local/demo up --kerberos
--stack-running`, the real script behind `make demo KERBEROS=1` (authz, HAProxy with the authz
Lua action, gateway-sync on the SASL ZooKeeper, `tarn submit` as alice with her keytab, Knox with
SPNEGO), brought down with `demo down` (which leaves the stack up). ``extra_submit_args`` go to
its `tarn submit` (`demo up --submit-arg=...`).

The processes it started (gateway-sync, authz, HAProxy, Knox, Prometheus) are in
``deployment.state["processes"]`` with their pids, command lines and logs (a process's environment
is in /proc/<pid>/environ while it runs); the Triton containers are the application's
(``state["app_id"]``). ``kill_process``/``start_process`` restart one on its recorded command
line and environment and record the new pid, so `demo down` stops it.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Set, Tuple

import pytest

from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_gateway_sync.plan import Admin
from tests.e2e.conftest import DEMO, ROOT, UP_TIMEOUT_S, DemoDeployment
from tests.support.polling import wait_for

sys.path.insert(0, str(ROOT / "deploy" / "local"))
import demo_knox  # noqa: E402  (deploy/local)
import tarnstack  # noqa: E402

REALM = "TARN.TEST"
ZK_PATH = "/services/triton/instances"  # the demo's
BACKEND = "triton_backend"
# Started from a process that exits at once, as `demo up` starts it: `demo down` (not this
# test process) is then the one that stops and reaps it.
_SPAWN = ("import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import demo_support; "
          "a = json.load(sys.stdin); demo_support.DemoState(Path(a['dir'])).spawn(a['name'], a['argv'], a['env'])")


class KerberosDeployment(DemoDeployment):
    """The e2e demo's handle, plus what the Kerberized demo needs: the stack's Kerberos
    environment, `tarn` as alice (her keytab), Knox's URL and SPNEGO headers."""

    def env(self) -> Dict[str, str]:
        env = super().env()
        env.update({k: v for k, v in tarnstack.read_env_file(self.run_dir / "stack.env").items() if k != "PATH"})
        return env

    def keytab(self, user: str) -> str:
        return self.env()[f"TARN_KEYTAB_{user.upper().replace('-', '_')}"]

    def login_args(self) -> List[str]:
        return ["--principal", f"alice@{REALM}", "--keytab", self.keytab("alice")]

    def tarn(self, *args: str) -> subprocess.CompletedProcess:
        return super().tarn(*args, *self.login_args())

    @property
    def knox_url(self) -> str:
        return self.state["knox"]["url"]

    def spnego(self, user: str, cache_dir: Path) -> Dict[str, str]:
        """A fresh `Authorization: Negotiate` header for ``user`` (alice or bob), from their keytab."""
        os.environ["KRB5_CONFIG"] = self.env()["KRB5_CONFIG"]  # the stack's realm, for MIT's library in-process
        return demo_knox.Spnego(f"{user}@{REALM}", Path(self.keytab(user)), cache_dir / f"ccache-{user}").header()

    # -------------------------------------------------------------- the fleet, as the gateways route it

    def ready(self) -> Set[str]:
        """``ip:port`` of every ready instance, as tarn-am sees them."""
        with self.am() as http:
            return {by_ip(line) for line in http.get("/instances").raise_for_status().text.split()}

    def haproxy_ready(self) -> Set[str]:
        servers = asyncio.run(RuntimeApi(self.haproxy_socket).servers(BACKEND))
        return {f"{s.ip}:{s.port}" for s in servers if s.admin is Admin.READY and s.ip != "0.0.0.0"}

    @staticmethod
    def znodes(reader) -> Set[str]:
        return {by_ip(name) for name in reader.get_children(ZK_PATH)} if reader.exists(ZK_PATH) else set()

    def routed_as_fleet(self, reader) -> Set[str]:
        """The fleet, once it has one ready instance and HAProxy and ZooKeeper route exactly it."""
        fleet = self.ready()
        return fleet if fleet and self.haproxy_ready() == fleet == self.znodes(reader) else set()

    def infer_as_alice(self) -> list:
        """identity([1, 2, 3]) through the demo's HAProxy, with alice's basic auth."""
        import httpx
        body = {"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}
        response = httpx.post(f"{self.haproxy_url}/v2/models/identity/infer", json=body, headers=self.auth("alice"),
                              timeout=10, trust_env=False)
        response.raise_for_status()
        return response.json()["outputs"][0]["data"]

    # -------------------------------------------------------------- one of the demo's processes

    def kill_process(self, name: str) -> Tuple[List[str], Dict[str, str]]:
        """SIGKILL one (a crash); its command line and environment, for ``start_process``."""
        proc = self.state["processes"][name]
        raw = Path(f"/proc/{proc['pid']}/environ").read_bytes()
        env = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
        os.killpg(proc["pid"], signal.SIGKILL)
        wait_for(lambda: not tarnstack.alive(proc["pid"]), 30, f"{name} gone")
        return proc["argv"], env

    def start_process(self, name: str, argv: List[str], env: Dict[str, str]) -> int:
        args = {"dir": str(self.run_dir / "demo"), "name": name, "argv": argv, "env": env}
        subprocess.run([sys.executable, "-c", _SPAWN, str(ROOT / "deploy" / "local")], input=json.dumps(args),
                       text=True, check=True, timeout=30)
        return self.state["processes"][name]["pid"]


def by_ip(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"{socket.gethostbyname(host)}:{port}"


def container_logs(stack, app_id: str, container_id: str = "*", files: str = "*.log") -> List[Path]:
    return list((Path(stack.env["TARN_HADOOP_RUN_DIR"]) / "yarn").glob(f"*/logs/{app_id}/{container_id}/{files}"))


def agent_log(stack, app_id: str, container_id: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in container_logs(stack, app_id, container_id))


def log_records(stack, app_id: str, container_id: str, message: str) -> list:
    """The JSON log records of a container (``*``: every one) that carry ``message``."""
    records = []
    for path in container_logs(stack, app_id, container_id, files="*"):
        for line in path.read_text(errors="replace").splitlines():
            if message in line and line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:  # a line cut by the container's kill
                    continue
    return records


def container_dir(stack, yarn_container_id: str) -> Path:
    found = list(Path(stack.env["TARN_HADOOP_RUN_DIR"]).glob(f"**/appcache/*/{yarn_container_id}"))
    assert found, f"no working directory of {yarn_container_id}"
    return found[0]


def triton_environments(stack) -> list:
    """The environments of the tritonservers running in the stack's containers."""
    run_dir, found = str(stack.env["TARN_HADOOP_RUN_DIR"]), []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd").startswith(run_dir) and \
                    b"tritonserver" in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                found.append((proc / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
    return found


def kerberos_demo(stack, extra_submit_args: Sequence[str] = ()) -> Iterator[KerberosDeployment]:
    """Bring the Kerberized demo up on ``stack`` (a tarnstack.Stack up with hadoop and kerberos)."""
    run_dir = Path(stack.run_dir)
    started = time.monotonic()
    result = subprocess.run([str(DEMO), "up", "--kerberos", "--stack-running", "--run-dir", str(run_dir),
                             *(f"--submit-arg={arg}" for arg in extra_submit_args)],
                            capture_output=True, text=True, timeout=UP_TIMEOUT_S)
    deployment = KerberosDeployment(run_dir, time.monotonic() - started, result.stdout + result.stderr)
    try:
        if result.returncode != 0:
            pytest.fail(f"deploy/local/demo up --kerberos failed ({result.returncode}):\n{deployment.up_output[-6000:]}",
                        pytrace=False)
        print(f"\nKerberized demo up (on the running stack): {deployment.up_s:.1f} s wall")
        yield deployment
    finally:
        down = deployment.down()
        if down.returncode != 0:
            print(f"demo down failed ({down.returncode}):\n{down.stdout}{down.stderr}")
