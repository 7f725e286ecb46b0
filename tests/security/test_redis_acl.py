"""gateway-sync, tarn-authz and a deployment's node-agents with their own Redis 7 ACL users
(deploy/redis/gateway-sync.conf, authz.conf and node-agent.conf, loaded as shipped into a real
redis-server), over plain TCP and over TLS (rediss://): each does its whole job with nothing
denied (Redis' ACL LOG stays empty for it), and with the same credentials cannot write what
belongs to another service: a command stream, a deployment record, another deployment."""
from __future__ import annotations

import httpx
import pytest
import redis
from redis import exceptions as redis_errors

from tarn_shared import events as ev
from tests.authz.support import GATEWAY, start_authz, write_policy_dir  # noqa: F401 (start_authz: a fixture)
from tests.node_agent.agent_process import AgentProcess
from tests.gateway_sync.support import EventPublisher, Gateways, in_process, settings_for, until
from tests.security.redis_acl import AGENT_DEPLOYMENT, USERS, denied_to
from tests.support.polling import wait_for
from tests.support.ports import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
GATEWAY_SYNC = {"plain": "gateway-sync", "tls": "gateway-sync-tls"}
@pytest.mark.parametrize("transport", ["plain", "tls"])
async def test_gateway_sync_routes_and_drains_with_its_own_acl_user_and_is_denied_nothing(
        stack, acl_redis, zk_hosts, haproxy_backend, deployment, transport):
    admin = redis.Redis.from_url(acl_redis["admin"])
    admin.acl_log_reset()
    publisher = EventPublisher(acl_redis["admin-tls" if transport == "tls" else "admin"], deployment)
    backend = haproxy_backend["dyn"]["name"]
    gateways = Gateways(haproxy_backend["socket"], backend, zk_hosts)
    ports = free_ports(2)
    everyone = {f"127.0.0.1:{p}" for p in ports}
    try:
        await publisher.record(zk_hosts, backend)
        for port in ports:
            await publisher.emit(ev.InstanceReady, port)
        await publisher.snapshot(ports)
        async with in_process(settings_for(stack, zk_hosts, deployment=deployment, redis_url=acl_redis[GATEWAY_SYNC[transport]])):
            await until(lambda: _equal(gateways.routed(), everyone), 20, "both instances routed")
            await publisher.emit(ev.InstanceDraining, ports[0])  # the handshake: gateway-sync answers unrouted
            # set: it is announced again at each change of the open-request count
            await until(lambda: set(_unrouted(admin, deployment)) == {f"container_{ports[0]}"}, 20, "instance.unrouted")
            await until(lambda: _equal(gateways.anything_routed(), everyone - {f"127.0.0.1:{ports[0]}"}), 20,
                        "the drained instance out of both gateways")
            places = ev.gateway_places_key(zk_hosts + "/tarn/gateway-sync/leader")
            await until(lambda: admin.hgetall(places), 20, "the ownership of places kept in Redis")
        assert denied_to(admin, "gateway-sync") == []  # every command gateway-sync sent was allowed to its user
    finally:
        gateways.close()
        await publisher.close()
        admin.close()


@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_the_gateway_sync_user_cannot_write_a_command_stream_a_record_or_telemetry(acl_redis, transport):
    client = redis.Redis.from_url(acl_redis[GATEWAY_SYNC[transport]])
    try:
        assert client.ping()
        forbidden = [
            lambda: client.xadd(ev.commands_stream("triton", "container_1"), {"event": "{}"}),
            lambda: client.hset(ev.deployments_key(), "triton", "{}"),
            lambda: client.xadd(ev.deployments_stream(), {"event": "{}"}),
            lambda: client.delete(ev.deployments_key()),
            lambda: client.xadd(ev.telemetry_stream("triton"), {"event": "{}"}),
            lambda: client.xadd(ev.audit_stream(), {"event": "{}"}),
            lambda: client.flushall(),
            lambda: client.config_get("*"),
        ]
        for attempt in forbidden:
            with pytest.raises(redis_errors.NoPermissionError):
                attempt()
        assert client.hgetall(ev.deployments_key()) is not None  # reading records is what it may do
    finally:
        client.close()
    wrong = redis.Redis.from_url(acl_redis[GATEWAY_SYNC[transport]].replace(USERS["gateway-sync"].password, "not"))
    with pytest.raises(redis_errors.AuthenticationError):
        wrong.ping()
    wrong.close()


def test_a_node_agent_serves_reports_and_drains_with_its_deployments_acl_user_and_is_denied_nothing(
        acl_redis, triton_model_repo, tmp_path):
    admin = redis.Redis.from_url(acl_redis["admin"])
    admin.acl_log_reset()
    agent = AgentProcess(tmp_path / "agent", acl_redis["agent"], AGENT_DEPLOYMENT, "container_1700000000000_0042_01_000007",
                         triton_model_repo)
    try:
        ready = agent.wait_ready()
        wait_for(lambda: admin.xlen(ev.telemetry_stream(AGENT_DEPLOYMENT)) >= 2, 60, "telemetry samples")
        # A drain, as tarn-am commands it and gateway-sync answers it (the admin writes both).
        drain = ev.DrainCommand(deployment=AGENT_DEPLOYMENT, app_id=ready.app_id, container_id=agent.container_id,
                                timeout_s=60)
        admin.xadd(ev.commands_stream(AGENT_DEPLOYMENT, agent.container_id), ev.encode(drain))
        agent.wait_for(ev.InstanceDraining, 60, "instance.draining")
        admin.xadd(ev.lifecycle_stream(AGENT_DEPLOYMENT), ev.encode(ev.InstanceUnrouted(
            deployment=AGENT_DEPLOYMENT, app_id=ready.app_id, instance_id=agent.container_id, seq=ready.seq + 10,
            endpoints=ready.endpoints, open_requests=0)))
        stopped = agent.wait_for(ev.InstanceStopped, 90, "instance.stopped")
        assert agent.process.wait(60) == 0 and stopped.reason.startswith("drained"), stopped.reason
        acks = [ev.decode(f) for _, f in admin.xrange(ev.acks_stream(AGENT_DEPLOYMENT))]
        assert [a.status for a in acks if a.command_id == drain.command_id][-1] == ev.AckStatus.DONE
        assert denied_to(admin, "agent") == []  # every command the agent sent was allowed to its user
    finally:
        agent.stop()
        admin.close()


def test_an_agent_user_cannot_publish_a_record_command_an_instance_or_touch_another_deployment(acl_redis):
    client = redis.Redis.from_url(acl_redis["agent"])
    record = {"event": "{}"}
    try:
        assert client.xadd(ev.lifecycle_stream(AGENT_DEPLOYMENT), record)  # its own instance events: allowed
        forbidden = [
            lambda: client.hset(ev.deployments_key(), AGENT_DEPLOYMENT, "{}"),
            lambda: client.xadd(ev.deployments_stream(), record),
            lambda: client.hgetall(ev.deployments_key()),
            lambda: client.xadd(ev.commands_stream(AGENT_DEPLOYMENT, "container_other"), record),
            lambda: client.xadd(ev.lifecycle_stream("other"), record),
            lambda: client.xadd(ev.telemetry_stream("other"), record),
            lambda: client.xrange(ev.lifecycle_stream("other")),
            lambda: client.xreadgroup("node-agent", "x", {ev.commands_stream("other", "container_1"): ">"}),
            lambda: client.delete(ev.lifecycle_stream(AGENT_DEPLOYMENT)),
            lambda: client.xtrim(ev.lifecycle_stream(AGENT_DEPLOYMENT), maxlen=0),
            lambda: client.xadd(ev.audit_stream(), record),
            lambda: client.xadd(ev.gateway_places_key("g"), record),
            lambda: client.flushall(),
        ]
        for attempt in forbidden:
            with pytest.raises(redis_errors.NoPermissionError):
                attempt()
    finally:
        client.close()


def test_authz_audits_and_reads_records_with_its_own_acl_user_and_may_write_nothing_else(
        acl_redis, start_authz, tmp_path):  # noqa: F811
    admin = redis.Redis.from_url(acl_redis["admin"])
    admin.acl_log_reset()
    record = ev.DeploymentRecord(deployment="acl-authz", app_id="application_1_0001", ranger_service="triton_acl")
    admin.hset(ev.deployments_key(), record.deployment, ev.encode(record)[ev.ENTRY_FIELD])
    write_policy_dir(tmp_path / "policies")
    write_policy_dir(tmp_path / "policies", "v2", service="triton_acl")
    before = admin.xlen(ev.audit_stream())
    server = start_authz(ranger_audit=True, redis_url=acl_redis["authz"], serve_deployments=True,
                         deployments_interval_s=0.2)
    try:
        with httpx.Client(base_url=server.url) as http:
            answer = http.get("/authorize", params={"model": "llama-7b", "action": "infer"},
                              headers={**GATEWAY, "X-TARN-User": "alice"})
            assert answer.status_code == 200, answer.text
            wait_for(lambda: http.get("/healthz").json()["services"].get("triton_acl", {}).get("loaded"), 20,
                     "the service the record names, served")
        wait_for(lambda: admin.xlen(ev.audit_stream()) > before, 20, "an audit event on tarn:audit")
        assert denied_to(admin, "authz") == []
    finally:
        admin.hdel(ev.deployments_key(), "acl-authz")
        admin.close()
    client = redis.Redis.from_url(acl_redis["authz"])
    try:
        for attempt in (lambda: client.hset(ev.deployments_key(), "x", "{}"),
                        lambda: client.xadd(ev.deployments_stream(), {"event": "{}"}),
                        lambda: client.xadd(ev.commands_stream("x", "container_1"), {"event": "{}"}),
                        lambda: client.xadd(ev.lifecycle_stream("x"), {"event": "{}"}),
                        lambda: client.xrange(ev.audit_stream()),
                        lambda: client.delete(ev.audit_stream())):
            with pytest.raises(redis_errors.NoPermissionError):
                attempt()
    finally:
        client.close()


def _unrouted(admin: redis.Redis, deployment: str) -> list:
    entries = admin.xrange(ev.lifecycle_stream(deployment))
    found = [ev.decode({k.decode(): v for k, v in fields.items()}) for _, fields in entries]
    return [e.instance_id for e in found if isinstance(e, ev.InstanceUnrouted)]


async def _equal(observed, expected) -> bool:
    return await observed == expected
