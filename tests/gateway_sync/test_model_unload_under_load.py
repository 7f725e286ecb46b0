"""Unload a model without losing a request (issue 16, item 5), against the real parts: Redis,
ZooKeeper, HAProxy 2.6 with model slot backends (deploy/haproxy/render_model_routes.py),
gateway-sync, and two real node-agents in explicit model control, each with its real
tritonserver holding ``identity``. Under steady inference through HAProxy one agent is told
to unload identity: it announces itself ready without it, waits for gateway-sync's
model.unrouted at 0 and for Triton to be idle for it, then unloads; not one request fails and
the requests after the unload are all served by the other instance."""
from __future__ import annotations

import asyncio
import time
from typing import List

import httpx
import pytest

from tarn_node_agent.telemetry import parse_triton_metrics
from tarn_shared import events as ev
from tests.node_agent.agent_process import AgentProcess
from tests.node_agent.test_agent_model_commands import acked
from tests.support.inference_load import BODY, InferenceLoad
from tests.support.model_haproxy import BACKEND, ModelHaproxy
from tests.support.stack_fixture import tarnstack
from tests.support.triton_fixture import copy_model_repository

from .support import EventPublisher, in_process, settings_for, until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
APP = "application_1700000000000_0016"
CONTAINERS = [f"container_1700000000000_0016_01_00000{n}" for n in (2, 3)]


@pytest.fixture
def model_haproxy(stack, tmp_path):
    haproxy = ModelHaproxy(tmp_path).start()
    try:
        yield haproxy.socket, haproxy.url()
    finally:
        haproxy.stop()


@pytest.fixture
def agents(tmp_path, redis_url, deployment):
    repository = copy_model_repository(tmp_path / "models")
    started: List[AgentProcess] = []
    try:
        for n, container in enumerate(CONTAINERS):
            started.append(AgentProcess(tmp_path / f"agent{n}", redis_url, deployment, container, repository,
                                        extra=["--model-control-mode", "explicit", "--load-models", "identity",
                                               "--app-id", APP]))
        for agent in started:
            agent.wait_ready()
        yield started
    finally:
        for agent in started:
            agent.stop()


def _haproxy_state(socket_path: str) -> str:
    return "\n".join(tarnstack.haproxy_command(socket_path, c) for c in ("show map", "show servers state"))


def _both_serve(one: AgentProcess, other: AgentProcess) -> bool:
    return identity_served(one) > 0 and identity_served(other) > 0


def identity_served(agent: AgentProcess) -> float:
    """Requests Triton answered for identity on this instance (0 once it is unloaded)."""
    text = httpx.get(f"http://127.0.0.1:{agent.metrics}/metrics", timeout=5.0).text
    return sum(c.requests for (model, _), c in parse_triton_metrics(text).items() if model == "identity")


async def test_an_unload_under_load_routes_the_model_away_first_and_loses_no_request(
        stack, redis_url, deployment, zk_hosts, model_haproxy, agents):
    socket_path, url = model_haproxy
    leaving, staying = agents
    publisher = EventPublisher(redis_url, deployment, app_id=APP)
    try:
        await publisher.record(zk_hosts, BACKEND)
        settings = settings_for(stack, zk_hosts, deployment=deployment, haproxy_sockets=[socket_path],
                                allowed_backends=[BACKEND], reconcile_interval_s=5.0)
        async with in_process(settings):
            # Both copies serve through the model's slot before the load starts.
            async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
                async def both_serve() -> bool:
                    await client.post("/v2/models/identity/infer", json=BODY)
                    return await asyncio.to_thread(_both_serve, leaving, staying)
                await until(both_serve, 60, lambda: f"identity served by both instances:\n"
                                                    f"{_haproxy_state(socket_path)}")
            with InferenceLoad([url], threads=4) as load:
                await until(lambda: load.ok > 50, 60, lambda: f"steady load ({load.summary()})")
                unload = ev.UnloadModelCommand(deployment=deployment, app_id=APP,
                                               container_id=leaving.container_id, model="identity")
                sent = time.monotonic()
                leaving.command(unload)
                ack = await asyncio.to_thread(acked, leaving, unload, 60)
                unloaded_at = time.monotonic()
                assert ack.status == ev.AckStatus.DONE, (ack, leaving.log_tail())
                assert "routed away by gateway-sync, no request in Triton" in ack.message, ack.message
                served_after = identity_served(staying), identity_served(leaving)
                counted_from = time.monotonic()  # requests started after this are not in served_after
                await until(lambda: load.succeeded_after(unloaded_at) > 100, 60,
                            lambda: f"requests after the unload ({load.summary()})")
            print(f"\ncommand to unload: {unloaded_at - sent:.2f} s ({ack.message}); load: {load.summary()}")
            assert load.failed == [], load.summary()
            # The instance announced itself without identity before the unload, and Triton unloaded it.
            assert leaving.mine(ev.InstanceReady)[-1].models == []
            unrouted = [e for e in leaving.lifecycle() if isinstance(e, ev.ModelUnrouted)]
            assert unrouted and unrouted[-1].open_requests == 0
            assert unrouted[-1].instance_id == leaving.container_id and unrouted[-1].model == "identity"
            index = httpx.post(f"http://127.0.0.1:{leaving.http}/v2/repository/index", json={}, timeout=5.0).json()
            assert [m.get("state") for m in index if m["name"] == "identity"] != ["READY"], index
            # Every request after the unload was served by the other instance.
            # (Triton's counters may lag a moment: wait for the other instance's to cover them.)
            after = load.succeeded_after(counted_from)
            await until(lambda: asyncio.to_thread(lambda: identity_served(staying) - served_after[0] >= after), 20,
                        lambda: f"{after} requests counted by the staying instance: {identity_served(staying)} - "
                                f"{served_after}, leaving {identity_served(leaving)}, total ok {load.ok}")
            assert identity_served(leaving) == served_after[1]
            assert unloaded_at - sent < 30  # the wait's bound: far less on a quiet machine
    finally:
        await publisher.close()
