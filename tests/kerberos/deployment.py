"""One Kerberized demo deployment for a test module, on the session's Kerberized stack
(conftest.py's ``secure_stack``): `deploy/local/demo up --kerberos --stack-running`, the real
script behind `make demo KERBEROS=1` (authz, HAProxy with the authz Lua action, gateway-sync on
the SASL ZooKeeper, `tarn submit` as alice with her keytab, Knox with SPNEGO), brought down after
the module with `demo down` (which leaves the stack up for the next module).

    @pytest.fixture(scope="module")
    def deployment(secure_stack):
        yield from kerberos_demo(secure_stack)

The processes it started (gateway-sync, authz, HAProxy, Knox, Prometheus) are in
``deployment.state["processes"]`` with their pids, command lines and logs (a process's environment
is in /proc/<pid>/environ while it runs); the Triton containers are the application's
(``state["app_id"]``). A test that restarts one should record the new pid there, so `demo down`
stops it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.e2e.conftest import DEMO, ROOT, UP_TIMEOUT_S, DemoDeployment

sys.path.insert(0, str(ROOT / "deploy" / "local"))
import demo_knox  # noqa: E402  (deploy/local)
import tarnstack  # noqa: E402

REALM = "TARN.TEST"


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


def kerberos_demo(stack) -> Iterator[KerberosDeployment]:
    """Bring the Kerberized demo up on ``stack`` (a tarnstack.Stack up with hadoop and kerberos)."""
    run_dir = Path(stack.run_dir)
    started = time.monotonic()
    result = subprocess.run([str(DEMO), "up", "--kerberos", "--stack-running", "--run-dir", str(run_dir)],
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
