"""HAProxy's own decision cache (the tarn_decisions table of haproxy-authz.cfg.tmpl), all real:
HAProxy 2.6, tarn-authz and tritonserver. An allow tarn_authz.lua got from authz is served
again by HAProxy's rules alone, for that user, action and model only, and never past the TTL;
anything the rules do not map exactly as the Lua does stays with the Lua."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tarn_authz.app import SERVER_OPTIONS, create_app
from tarn_gateway_sync.haproxy import RuntimeApi
from tests.authz.servers import ServerThread
from tests.authz.support import GATEWAY_TOKEN, settings_for
from tests.authz.test_haproxy_pep import PASSWORDS as PEP_PASSWORDS, POLICIES, _infer_add_sub, _policy, spoe_options
from tests.support.haproxy_authz import haproxy_authz

pytestmark = pytest.mark.integration
LONG_USER = "u" * 256  # the longest user name authz takes, and a table key holds whole
TOO_LONG_USER = "v" * 257
PASSWORDS = {**PEP_PASSWORDS, LONG_USER: "long-pw", TOO_LONG_USER: "too-long-pw"}
CACHED_POLICIES = {**POLICIES, "policies": POLICIES["policies"] + [
    _policy(5, ["identity"], [LONG_USER, TOO_LONG_USER], ["infer"])]}
IDENTITY_INFER = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


class CachedGateway:
    def __init__(self, url: str, authz: ServerThread, admin_socket: Path) -> None:
        self.url, self.authz, self.admin_socket = url, authz, admin_socket

    def call(self, method: str, path: str, user: str, **kwargs) -> int:
        return httpx.request(method, self.url + path, auth=(user, PASSWORDS[user]), timeout=30, **kwargs).status_code

    def decisions(self) -> float:
        text = httpx.get(f"{self.authz.url}/metrics", headers={"X-TARN-Token": GATEWAY_TOKEN}).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("tarn_authz_decisions_total{"))

    def table(self, name: str) -> dict:
        """``show table`` on the admin socket: {key: the entry's data fields}."""
        text = asyncio.run(RuntimeApi(str(self.admin_socket)).execute(f"show table {name}"))
        entries = {}
        for line in text.splitlines():
            if " key=" in line:
                fields = dict(f.split("=", 1) for f in line.split(" ")[1:] if "=" in f)
                entries[fields.pop("key")] = fields
        return entries


@pytest.fixture(scope="module", params=["lua", "spoe"])
def cached(request, triton_server, tmp_path_factory):
    """Allows stored by the Lua action, or by the rules answering from the SPOE agent."""
    tmp = tmp_path_factory.mktemp(f"haproxy-decision-cache-{request.param}")
    (tmp / "policies").mkdir()
    (tmp / "policies" / "triton_prod.json").write_text(json.dumps(CACHED_POLICIES))
    settings, render_options = spoe_options(tmp, request.param)
    authz = ServerThread(create_app(settings_for(tmp, **settings)), **SERVER_OPTIONS).start()
    try:
        with haproxy_authz(tmp, PASSWORDS, "haproxy with authz in front of triton", authz_url=authz.url,
                           gateway_token=GATEWAY_TOKEN, servers=[f"server triton1 {triton_server.http_host_port} check"],
                           cache_ttl_s=60.0, **render_options) as url:
            yield CachedGateway(url, authz, tmp / "haproxy-authz.sock")
    finally:
        authz.stop()


def test_a_repeated_allow_is_served_by_haproxy_without_asking_authz_or_running_lua(cached):
    assert cached.call("POST", "/v2/models/add_sub/infer", "alice", json=_infer_add_sub()) == 200
    assert "alice|infer|add_sub" in cached.table("tarn_decisions")
    before = cached.decisions()
    for _ in range(20):
        assert cached.call("POST", "/v2/models/add_sub/infer", "alice", json=_infer_add_sub()) == 200
    assert cached.call("POST", "/v2/models/add_sub/versions/1/infer", "alice", json=_infer_add_sub()) == 200
    # One table for all HAProxy threads, read by HAProxy's rules: authz is not asked again, and the
    # hits are counted for the audit (the Lua's own per-thread caches would count none of them there).
    assert cached.decisions() == before
    assert int(cached.table("tarn_decision_hits")["127.0.0.1|alice|infer|add_sub"]["http_req_cnt"]) >= 21


def test_a_cached_allow_answers_only_its_own_user_action_and_model(cached):
    assert cached.call("POST", "/v2/models/add_sub/infer", "alice", json=_infer_add_sub()) == 200
    assert cached.call("POST", "/v2/models/add_sub/infer", "bob", json=_infer_add_sub()) == 403
    assert cached.call("POST", "/v2/models/identity/infer", "alice", json=IDENTITY_INFER) == 403
    assert cached.call("GET", "/v2/models/add_sub/config", "carol") == 403  # carol may only list
    # A model named like an action is a model: its metadata, not add_sub's infer.
    assert cached.call("GET", "/v2/models/infer", "alice") == 403


def test_paths_outside_the_plain_form_are_refused_though_their_model_is_cached(cached):
    assert cached.call("POST", "/v2/models/add_sub/infer", "alice", json=_infer_add_sub()) == 200
    for path in ("/v2/models/add_sub/infer/", "/v2/models/add_sub//infer", "/v2/models/%61dd_sub/infer",
                 "/v2/models/add_sub/infer;x", "/v2/models/add_sub/versions/x/infer"):
        assert cached.call("POST", path, "alice", json=_infer_add_sub()) in (400, 403), path
    assert cached.call("GET", "/v2/models/add_sub/stats", "alice") == 403
    assert cached.call("POST", "/v2/models/add_sub/infer?x=1", "alice", json=_infer_add_sub()) == 200


def test_a_deny_is_never_stored_in_haproxys_cache(cached):
    for _ in range(3):
        assert cached.call("POST", "/v2/models/add_sub/infer", "bob", json=_infer_add_sub()) == 403
    assert not [key for key in cached.table("tarn_decisions") if key.startswith("bob|")]


def test_the_longest_user_name_is_cached_whole_and_a_longer_one_never(cached):
    for _ in range(3):
        assert cached.call("POST", "/v2/models/identity/infer", LONG_USER, json=IDENTITY_INFER) == 200
        assert cached.call("POST", "/v2/models/identity/infer", TOO_LONG_USER, json=IDENTITY_INFER) == 403
    keys = cached.table("tarn_decisions")
    assert f"{LONG_USER}|infer|identity" in keys
    assert not [key for key in keys if key.startswith("v")]  # past the rules' limit: the Lua's (authz refuses it)
