"""The Ranger Admin download client and the policy refresh, against a replay server.

Ranger Admin cannot run on these machines, so these tests talk HTTP to a real server
(tests/authz/replay/server.py) that replays payloads written by Ranger's own Java classes
(the oracle's write-payloads mode) with Ranger's download semantics: versions, 304 when
unchanged, 404 for an unknown service, 401 on the secure endpoints without credentials.
Kerberos (SPNEGO, behind Hadoop's filter, on a real KDC) is tests/kerberos/test_authz_ranger_kerberos.py's."""
from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone

import httpx
import pytest

from tarn_authz.decision_metrics import AuthzMetrics
from tarn_authz.ranger import AccessRequest
from tarn_authz.ranger_admin import RangerAdminClient, plugin_id
from tarn_authz.registry import PolicyRegistry
from tarn_authz.sources import DiskCache, RangerSource
from tests.authz.replay.server import RangerReplay
from tests.authz.servers import ServerThread

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
SERVICE = "triton_prod"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture
def replay():
    ranger = RangerReplay()
    ranger.publish(SERVICE, "v1")
    with ServerThread(ranger.app()) as server:
        ranger.url = server.url
        yield ranger


def registry_for(url: str, http: httpx.AsyncClient, tmp_path, *, secure=False, service=SERVICE, app_id="tarn",
                 max_policy_age_s=0.0):
    metrics = AuthzMetrics()

    def make(name):
        return RangerSource(RangerAdminClient(http, url, name, app_id=app_id, cluster_name="prod-cluster",
                                              secure=secure))

    return PolicyRegistry(default_service=service, default_audit=False, make_source=make,
                          disk_cache=DiskCache(tmp_path / "cache", app_id), metrics=metrics,
                          max_policy_age_s=max_policy_age_s), metrics


def allowed(state, model, access, user):
    groups = state.groups_of(user)
    return state.engine.evaluate(AccessRequest({"model": model}, access, user, groups), NOW).allowed


async def test_first_download_loads_policies_roles_and_user_store(replay, tmp_path):
    async with httpx.AsyncClient() as http:
        registry, _ = registry_for(replay.url, http, tmp_path)
        state = registry.states[SERVICE]
        assert await registry.refresh(state) is True
    assert (state.bundle.policy_version, state.bundle.role_version, state.bundle.user_store_version) == (7, 2, 5)
    assert allowed(state, "llama-7b", "infer", "alice")  # group ml from the user store
    assert allowed(state, "llama-7b", "metadata", "carol")  # role auditors
    assert not allowed(state, "llama-secret", "infer", "alice")  # deny for group ml
    first = [r for r in replay.requests]
    assert {r["kind"] for r in first} == {"policies", "roles", "users"}
    for request in first:
        params = request["params"]
        assert params["pluginId"] == f"tarn@{socket.gethostname()}-{SERVICE}"
        assert params["clusterName"] == "prod-cluster"
        assert params["lastActivationTime"] == "0"
        assert request["secure"] is False
    assert [r["params"]["lastKnownVersion"] for r in first if r["kind"] == "policies"] == ["-1"]


async def test_unchanged_service_answers_304_and_nothing_is_reinstalled(replay, tmp_path):
    async with httpx.AsyncClient() as http:
        registry, _ = registry_for(replay.url, http, tmp_path)
        state = registry.states[SERVICE]
        await registry.refresh(state)
        engine = state.engine
        replay.requests.clear()
        assert await registry.refresh(state) is False
    assert state.engine is engine
    sent = {r["kind"]: r["params"] for r in replay.requests}
    assert sent["policies"]["lastKnownVersion"] == "7"
    assert sent["roles"]["lastKnownRoleVersion"] == "2"
    assert sent["users"]["lastKnownUserStoreVersion"] == "5"
    assert int(sent["policies"]["lastActivationTime"]) > 0


async def test_new_version_replaces_the_engine(replay, tmp_path):
    async with httpx.AsyncClient() as http:
        registry, _ = registry_for(replay.url, http, tmp_path)
        state = registry.states[SERVICE]
        await registry.refresh(state)
        assert not allowed(state, "mistral-7b", "infer", "erin")
        replay.publish(SERVICE, "v2")
        assert await registry.refresh(state) is True
    assert (state.bundle.policy_version, state.bundle.role_version, state.bundle.user_store_version) == (8, 3, 6)
    assert allowed(state, "mistral-7b", "infer", "erin")
    assert allowed(state, "llama-7b", "infer", "frank")  # frank joined ml in the new user store


async def test_secure_endpoints_with_basic_auth(replay, tmp_path):
    async with httpx.AsyncClient(auth=httpx.BasicAuth("rangeradmin", "s3cret")) as http:
        registry, _ = registry_for(replay.url, http, tmp_path, secure=True)
        state = registry.states[SERVICE]
        assert await registry.refresh(state) is True
    assert state.loaded and state.bundle.policy_version == 7
    assert all(r["secure"] for r in replay.requests)


async def test_secure_endpoints_without_credentials_fail_clearly(replay, tmp_path):
    async with httpx.AsyncClient() as http:
        registry, metrics = registry_for(replay.url, http, tmp_path, secure=True)
        state = registry.states[SERVICE]
        assert await registry.refresh(state) is False
    assert not state.loaded
    assert "AuthError" in state.last_error and "401" in state.last_error
    assert metrics.refresh_errors.labels(SERVICE)._value.get() == 1


async def test_unknown_service_is_reported_and_nothing_is_allowed(replay, tmp_path):
    async with httpx.AsyncClient() as http:
        registry, _ = registry_for(replay.url, http, tmp_path, service="no_such_service")
        state = registry.states["no_such_service"]
        await registry.refresh(state)
    assert not state.loaded and registry.health() == "unhealthy"
    assert "ServiceNotFound" in state.last_error


async def test_malformed_download_keeps_the_last_good_policies(replay, tmp_path):
    async with httpx.AsyncClient() as http:
        registry, metrics = registry_for(replay.url, http, tmp_path)
        state = registry.states[SERVICE]
        await registry.refresh(state)
        replay.publish(SERVICE, "v2")
        replay.broken = b'{"serviceName": "triton_prod", "policies": [{"id": "not-a-number"'
        assert await registry.refresh(state) is False
        assert "MalformedPolicies" in state.last_error
        assert state.bundle.policy_version == 7 and allowed(state, "llama-7b", "infer", "alice")
        replay.broken = b'{"serviceName": "triton_prod", "policyVersion": 9, "policies": []}'  # no serviceDef
        assert await registry.refresh(state) is False
        assert "serviceDef" in state.last_error and state.bundle.policy_version == 7
        replay.broken = None
        assert await registry.refresh(state) is True and state.last_error is None
    assert state.bundle.policy_version == 8
    assert metrics.refresh_errors.labels(SERVICE)._value.get() == 2


async def test_ranger_down_at_start_serves_the_last_good_download_from_disk(replay, tmp_path):
    async with httpx.AsyncClient() as http:
        registry, _ = registry_for(replay.url, http, tmp_path)
        await registry.refresh(registry.states[SERVICE])
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert cached == [f"tarn_{SERVICE}.json", f"tarn_{SERVICE}_roles.json", f"tarn_{SERVICE}_userstore.json"]
    async with httpx.AsyncClient() as http:  # a restart, with Ranger gone
        dead = f"http://127.0.0.1:{_closed_port()}"
        registry, metrics = registry_for(dead, http, tmp_path)
        state = registry.states[SERVICE]
        await registry.refresh(state)
    assert state.loaded and state.bundle.origin == "cache" and state.bundle.policy_version == 7
    assert "UnavailableError" in state.last_error
    assert allowed(state, "llama-7b", "infer", "alice")


async def test_the_disk_copy_is_as_old_as_its_download(replay, tmp_path):
    async with httpx.AsyncClient() as http:
        registry, _ = registry_for(replay.url, http, tmp_path)
        await registry.refresh(registry.states[SERVICE])
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / "cache" / f"tarn_{SERVICE}.json", (two_hours_ago, two_hours_ago))
    async with httpx.AsyncClient() as http:  # a restart, with Ranger gone
        registry, _ = registry_for(f"http://127.0.0.1:{_closed_port()}", http, tmp_path, max_policy_age_s=3600)
        state = registry.states[SERVICE]
        await registry.refresh(state)
    assert state.loaded and state.bundle.origin == "cache"
    assert 7190 < state.freshness.age_s(time.time()) < 7300
    assert registry.health() == "unhealthy"  # past the maximum age: it denies everything (decisions.py)


def test_plugin_id_is_ranger_format_and_bounded():
    assert plugin_id("tarn", "triton_prod", host="gw1") == "tarn@gw1-triton_prod"
    assert plugin_id("", "svc", host="h") == "h-svc"
    assert len(plugin_id("a", "s" * 400, host="h")) == 255


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
