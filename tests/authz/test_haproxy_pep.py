"""HAProxy as the enforcement point (deploy/haproxy/tarn_authz.lua), all real: HAProxy 2.6
with the rendered haproxy-authz.cfg.tmpl, tarn-authz, and tritonserver serving the test
models (add_sub, identity) behind it. Users authenticate to HAProxy with basic auth."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from tarn_authz.app import SERVER_OPTIONS, create_app
from tests.authz.servers import ServerThread
from tests.authz.support import GATEWAY_TOKEN, settings_for
from tests.support.ports import free_port
from tests.support.haproxy_authz import haproxy_authz

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SERVICEDEF = json.loads((ROOT / "deploy" / "ranger" / "triton-servicedef.json").read_text())
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
CACHE_TTL_S = 1.0


def _policy(pid, models, users, accesses):
    return {"id": pid, "name": f"p{pid}", "isEnabled": True, "isAuditEnabled": True,
            "resources": {"model": {"values": models}},
            "policyItems": [{"users": users, "accesses": [{"type": a, "isAllowed": True} for a in accesses]}]}


POLICIES = {"serviceName": "triton_prod", "policyVersion": 1, "serviceDef": SERVICEDEF, "policies": [
    _policy(1, ["add_sub"], ["alice"], ["infer", "list"]),
    _policy(2, ["identity"], ["bob"], ["infer"]),
    _policy(3, ["*"], ["carol"], ["list"]),
]}


class Gateway:
    def __init__(self, url: str, authz: ServerThread, authz_port: int, tmp: Path, settings: dict) -> None:
        self.url, self.authz, self.authz_port, self.tmp, self.settings = url, authz, authz_port, tmp, settings

    def restart_authz(self) -> None:
        self.authz = ServerThread(create_app(settings_for(self.tmp, **self.settings)), port=self.authz_port,
                                  **SERVER_OPTIONS).start()

    def call(self, method: str, path: str, user=None, headers=None, **kwargs) -> httpx.Response:
        headers = dict(headers or {})
        if user:
            token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


def spoe_options(tmp: Path, misses: str) -> tuple:
    """(authz settings, render options) for misses asked by the Lua action over HTTP ("lua") or
    of authz's SPOE agent ("spoe")."""
    if misses == "lua":
        return {}, {}
    return {"spoa_socket": tmp / "spoa.sock"}, {"spoa_socket": tmp / "spoa.sock"}


@pytest.fixture(scope="module", params=["lua", "spoe"])
def gateway(request, triton_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"haproxy-authz-{request.param}")
    (tmp / "policies").mkdir()
    (tmp / "policies" / "triton_prod.json").write_text(json.dumps(POLICIES))
    authz_port = free_port()
    settings, render_options = spoe_options(tmp, request.param)
    gateway = Gateway("", None, authz_port, tmp, settings)
    gateway.restart_authz()
    try:
        with haproxy_authz(tmp, PASSWORDS, "haproxy with authz in front of triton",
                           authz_url=f"http://127.0.0.1:{authz_port}", gateway_token=GATEWAY_TOKEN,
                           servers=[f"server triton1 {triton_server.http_host_port} check"],
                           cache_ttl_s=CACHE_TTL_S, **render_options) as gateway.url:
            yield gateway
    finally:
        gateway.authz.stop()  # the one running now (a test restarts it)


def _infer_add_sub() -> dict:
    data = [1.0, 2.0, 3.0, 4.0]
    return {"inputs": [{"name": n, "shape": [4], "datatype": "FP32", "data": data} for n in ("INPUT0", "INPUT1")]}


def test_allowed_user_reaches_triton_and_gets_the_result(gateway):
    response = gateway.call("POST", "/v2/models/add_sub/infer", "alice", json=_infer_add_sub())
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    assert outputs["OUTPUT0"] == [2.0, 4.0, 6.0, 8.0]
    versioned = gateway.call("POST", "/v2/models/add_sub/versions/1/infer", "alice", json=_infer_add_sub())
    assert versioned.status_code == 200


def test_denied_user_gets_403(gateway):
    assert gateway.call("POST", "/v2/models/add_sub/infer", "bob", json=_infer_add_sub()).status_code == 403
    assert gateway.call("POST", "/v2/models/identity/infer", "alice",
                        json={"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
                        ).status_code == 403


def test_metadata_config_and_ready_need_metadata(gateway):
    for path in ("/v2/models/add_sub", "/v2/models/add_sub/config", "/v2/models/add_sub/ready",
                 "/v2/models/add_sub/versions/1"):
        assert gateway.call("GET", path, "alice").status_code == 200, path  # infer implies metadata
        assert gateway.call("GET", path, "carol").status_code == 403, path  # list only


def test_spoofed_identity_header_is_ignored(gateway):
    spoof = {"X-TARN-User": "alice", "X-Knox-Actor-ID": "alice", "X-TARN-Groups": "admins"}
    as_bob = gateway.call("POST", "/v2/models/add_sub/infer", "bob", headers=spoof, json=_infer_add_sub())
    assert as_bob.status_code == 403
    anonymous = gateway.call("POST", "/v2/models/add_sub/infer", None, headers=spoof, json=_infer_add_sub())
    assert anonymous.status_code == 401
    wrong_password = httpx.post(gateway.url + "/v2/models/add_sub/infer", auth=("alice", "guess"),
                                json=_infer_add_sub(), timeout=10)
    assert wrong_password.status_code == 401


def test_server_health_and_metadata_need_only_authentication(gateway):
    for path in ("/v2/health/ready", "/v2/health/live", "/v2"):
        assert gateway.call("GET", path, "bob").status_code == 200, path
        assert gateway.call("GET", path, None).status_code == 401, path


def test_unmapped_paths_are_denied(gateway):
    for method, path in (("POST", "/v2/repository/models/add_sub/unload"), ("GET", "/v2/models/stats"),
                         ("GET", "/v2/models/add_sub/stats"), ("GET", "/metrics")):
        assert gateway.call(method, path, "alice").status_code == 403, path


def test_repository_index_lists_only_what_the_user_may_list(gateway):
    def names(user):
        response = gateway.call("POST", "/v2/repository/index", user, json={})
        assert response.status_code == 200, response.text
        return sorted(entry["name"] for entry in response.json())

    assert names("carol") == ["add_sub", "identity"]
    assert names("alice") == ["add_sub"]
    assert names("bob") == []


def test_decisions_are_cached_briefly(gateway):
    def decisions() -> float:
        text = httpx.get(f"{gateway.authz.url}/metrics", headers={"X-TARN-Token": GATEWAY_TOKEN}).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("tarn_authz_decisions_total{"))

    gateway.call("GET", "/v2/models/identity", "bob")
    before = decisions()
    for _ in range(5):
        assert gateway.call("GET", "/v2/models/identity", "bob").status_code == 200
    assert decisions() - before <= 1  # HAProxy may run several threads, each with its own cache
    time.sleep(CACHE_TTL_S + 0.5)
    gateway.call("GET", "/v2/models/identity", "bob")
    assert decisions() > before


def test_authz_down_fails_closed_with_503(gateway):
    gateway.authz.stop()
    try:
        time.sleep(CACHE_TTL_S + 0.5)  # let cached decisions expire
        response = gateway.call("POST", "/v2/models/add_sub/infer", "alice", json=_infer_add_sub())
        assert response.status_code == 503
        assert gateway.call("POST", "/v2/repository/index", "carol", json={}).status_code == 503
        assert gateway.call("GET", "/v2/health/ready", "alice").status_code == 200  # no model right needed
    finally:
        gateway.restart_authz()
    assert gateway.call("POST", "/v2/models/add_sub/infer", "alice", json=_infer_add_sub()).status_code == 200
