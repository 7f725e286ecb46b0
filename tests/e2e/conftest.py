"""The demo as a fixture: `deploy/local/demo up --run-dir <private dir>` (the real script
behind `make demo`: stack, minicluster, authz, HAProxy with the authz Lua action,
gateway-sync, `tarn submit`), shared by the tests of a module and brought down after them."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import httpx
import pytest

from tests.support import polling

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "local" / "demo"
sys.path.insert(0, str(ROOT / "deploy" / "local"))
import demo_support  # noqa: E402  (deploy/local, standard library only)

UP_TIMEOUT_S = 900
DOWN_TIMEOUT_S = 300


@dataclass
class DemoDeployment:
    run_dir: Path
    up_s: float
    up_output: str
    down_result: Optional[subprocess.CompletedProcess] = field(default=None, repr=False)
    down_s: Optional[float] = None

    @property
    def state(self) -> Dict:
        return json.loads((self.run_dir / "demo" / "demo.json").read_text())

    @property
    def haproxy_url(self) -> str:
        return self.state["haproxy"]["url"]

    @property
    def haproxy_socket(self) -> str:
        return self.state["haproxy"]["socket"]

    @property
    def token(self) -> str:
        return self.state["token"]

    def auth(self, user: str) -> Dict[str, str]:
        password = self.state["users"][user]
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def env(self) -> Dict[str, str]:
        """The environment `tarn` needs: the minicluster's, the venv first on PATH, the token."""
        env = demo_support.parse_hadoop_env(self.run_dir / "hadoop.env", os.environ)
        env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env['PATH']}"
        env["TARN_TOKEN"] = self.token
        return env

    def tarn(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(ROOT / ".venv" / "bin" / "tarn"), *args, "--name", self.state["deployment"],
                                 "--app-id", self.state["app_id"]], env=self.env(), capture_output=True,
                                text=True, timeout=180)
        assert result.returncode == 0, f"tarn {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    def am(self) -> httpx.Client:
        return httpx.Client(base_url=self.state["am_address"], headers={"X-TARN-Token": self.token},
                            timeout=10, trust_env=False)

    def instances(self) -> List[Dict]:
        with self.am() as http:
            return http.get("/instances", headers={"Accept": "application/json"}).raise_for_status().json()

    def servers(self) -> List[Dict[str, str]]:
        """HAProxy's triton_backend servers (gateway-sync's), as `show servers state` gives them."""
        return demo_support.haproxy_servers(self.haproxy_socket, "triton_backend")

    def serving(self) -> List[str]:
        return sorted(s["srv_name"] for s in self.servers() if demo_support.serving(s))

    def down(self) -> subprocess.CompletedProcess:
        if self.down_result is None:
            started = time.monotonic()
            self.down_result = subprocess.run([str(DEMO), "down", "--run-dir", str(self.run_dir)],
                                              capture_output=True, text=True, timeout=DOWN_TIMEOUT_S)
            self.down_s = time.monotonic() - started
        return self.down_result


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[DemoDeployment]:
    run_dir = tmp_path_factory.mktemp("demo", numbered=True)
    started = time.monotonic()
    result = subprocess.run([str(DEMO), "up", "--run-dir", str(run_dir)], capture_output=True, text=True,
                            timeout=UP_TIMEOUT_S)
    deployment = DemoDeployment(run_dir, time.monotonic() - started, result.stdout + result.stderr)
    try:
        if result.returncode != 0:
            pytest.fail(f"deploy/local/demo up failed ({result.returncode}):\n{deployment.up_output[-6000:]}",
                        pytrace=False)
        print(f"\ndemo up: {deployment.up_s:.1f} s wall")
        yield deployment
    finally:
        down = deployment.down()
        if down.returncode != 0:
            print(f"demo down failed ({down.returncode}):\n{down.stdout}{down.stderr}")


def wait_for(condition, timeout_s: float, message: str, interval_s: float = 0.25):
    """The demo's servers may not answer yet: connection errors count as "not yet"."""
    return polling.wait_for(condition, timeout_s, message, interval_s, ignore=(httpx.HTTPError, OSError, KeyError))
