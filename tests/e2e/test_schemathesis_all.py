"""Every TARN service's REST API fuzzed by schemathesis from its own OpenAPI, each served by
a real process on loopback: no input may produce a 5xx.

- tarn-authz: ``python -m tarn_authz`` on a local policy folder.
- tarn-gateway-sync: ``python -m tarn_gateway_sync`` against the local stack.
- tarn-node-agent: its FastAPI app (create_app, with the real metrics and GPU collectors) in
  a uvicorn process of its own (tritonserver=/bin/true only passes the settings' check; no Triton
  runs, so the Triton collector reports it down): the agent publishes no /openapi.json (openapi_url=None), so
  the schema is the app's own ``app.openapi()``, and the full agent would first stage a
  repository and start tritonserver, which its own tests cover.
- tarn-am runs only in its AM container (``serve`` needs skein's ApplicationClient), so its
  API is fuzzed by tests/am/test_am_on_yarn.py against the real tarn-am on the minicluster.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from typing import Dict, List, Optional

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.churn_support import GATEWAY_TOKEN, ROOT, AuthzProcess
from tests.gateway_sync.support import Replica, settings_for
from tests.support.polling import wait_for
from tests.support.ports import free_port

pytestmark = pytest.mark.integration
schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI writes OpenAPI 3.1
EXAMPLES = 25
TOKEN = "fuzz-token"


def fuzz(schema, headers: Dict[str, str], skip=()) -> List[str]:
    """Every operation, EXAMPLES generated cases each: the 5xx answers found."""
    failures: List[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()
        if (op.method.upper(), op.path) in skip:
            continue

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case):
            response = case.call(headers={**(case.headers or {}), **headers}, timeout=15)
            if response.status_code >= 500:
                failures.append(f"{op.method} {op.path}: {response.status_code} {response.text[:200]}")
        check()
    return failures


def _wait_http(url: str, timeout_s: float = 30.0, proc: Optional[subprocess.Popen] = None) -> None:
    def answers() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server for {url} exited with {proc.returncode}")
        httpx.get(url, timeout=1.0)
        return True

    wait_for(answers, timeout_s, f"{url} to answer", interval_s=0.1, ignore=(httpx.HTTPError,))


def test_authz_api_has_no_5xx(tmp_path):
    authz = AuthzProcess(tmp_path).start()
    try:
        _wait_http(f"{authz.url}/healthz", proc=authz.proc)
        schema = schemathesis.from_uri(f"{authz.url}/openapi.json", base_url=authz.url)
        failures = fuzz(schema, {"X-TARN-Token": GATEWAY_TOKEN, "X-TARN-User": "alice"})
        failures += fuzz(schema, {})
    finally:
        authz.stop()
    assert failures == []


def test_gateway_sync_api_has_no_5xx(stack, tmp_path):
    replica = Replica(settings_for(stack, stack.env["ZK_HOSTS"], replica=f"fuzz-{uuid.uuid4().hex[:6]}", token=TOKEN,
                                   deployment="none", election_path=f"/tarn-fuzz-{uuid.uuid4().hex[:8]}/leader"),
                      tmp_path / "gateway-sync.log")
    try:
        _wait_http(f"{replica.url}/healthz", proc=replica.proc)
        schema = schemathesis.from_uri(f"{replica.url}/openapi.json", base_url=replica.url)
        failures = fuzz(schema, {"X-TARN-Token": TOKEN}) + fuzz(schema, {})
    finally:
        replica.stop()
    assert failures == []


NODE_AGENT_SERVER = textwrap.dedent("""
    import sys, uvicorn
    from tarn_node_agent.app import create_app
    from tarn_node_agent.settings import NodeAgentSettings
    settings = NodeAgentSettings(model_repository="/nonexistent/models", container_id="container_e01_1700000000000_0001_01_000002",
                                 deployment="fuzz", token="{token}", tritonserver="/bin/true")
    uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
""")


def test_node_agent_api_has_no_5xx(tmp_path):
    from tarn_node_agent.app import create_app
    from tarn_node_agent.settings import NodeAgentSettings

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "node-agent.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-c", NODE_AGENT_SERVER.format(token=TOKEN), str(port)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"{url}/healthz", proc=proc)
        openapi = create_app(NodeAgentSettings(
            model_repository="/nonexistent/models", container_id="container_e01_1700000000000_0001_01_000002",
            tritonserver="/bin/true")).openapi()
        assert {"/healthz", "/metrics"} <= set(openapi["paths"])
        schema = schemathesis.from_dict(json.loads(json.dumps(openapi)), base_url=url)
        failures = fuzz(schema, {"X-TARN-Token": TOKEN}) + fuzz(schema, {})
        assert httpx.get(f"{url}/metrics", headers={"X-TARN-Token": TOKEN}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert failures == []
