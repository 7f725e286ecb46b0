"""Every way the instance ends goes through one stopped announcement: the agent's own
shutdown parts wired to a real tritonserver and a real Redis, each ending read alone."""
from __future__ import annotations

import asyncio
import os
import signal
from contextlib import asynccontextmanager
from typing import AsyncIterator, List

import pytest
import redis

from tarn_node_agent.agent_metrics import AgentStatus
from tarn_node_agent.announcer import Announcer
from tarn_node_agent.commands import Acks
from tarn_node_agent.drainer import Drainer
from tarn_node_agent.lifecycle import Lifecycle
from tarn_node_agent.settings import NodeAgentSettings
from tarn_node_agent.shutdown import Shutdown
from tarn_node_agent.triton import Health, TritonApi, TritonProcess
from tarn_shared import events as ev
from tarn_shared.streams import StreamPublisher, connect
from tests.support.triton import TritonPorts, triton_runtime, tritonserver_command

pytestmark = pytest.mark.integration

CID = "container_1700000000000_0042_01_000002"
DRAINED = "drained: unrouted, 0 requests open at the gateways, no request in Triton"


class Parts:
    """The shutdown as agent.py wires it, around a tritonserver on the test's model repository."""

    def __init__(self, redis_url: str, deployment: str, models, terminate_timeout_s: float = 0.0) -> None:
        self.settings = NodeAgentSettings(model_repository=str(models), container_id=CID, deployment=deployment,
                                          redis_url=redis_url, tritonserver=str(triton_runtime().binary),
                                          drain_unrouted_timeout_s=5.0)
        self.ports = TritonPorts.free()
        self.endpoints = ev.Endpoints(host="127.0.0.1", http_port=self.ports.http, grpc_port=self.ports.grpc,
                                      metrics_port=self.ports.metrics)
        s = self.settings
        self.lifecycle = Lifecycle(s.deployment, s.app_id, CID, self.endpoints)
        self.status = AgentStatus(instance_state=lambda: self.lifecycle.state)
        self.redis = connect(redis_url)
        self.process = TritonProcess()
        self.api = TritonApi("127.0.0.1", self.ports.http, self.ports.metrics)
        announcer = Announcer(self.lifecycle, StreamPublisher(self.redis), s.deployment)
        drainer = Drainer(s, self.api, self.process, announcer, self.redis)
        self.shutdown = Shutdown(s, self.process, announcer, self.status, drainer,
                                 Acks(s, StreamPublisher(self.redis)).send, terminate_timeout_s)

    def start_triton(self) -> None:
        argv, env = tritonserver_command(self.settings.model_repository, self.ports)
        self.process.start(argv, env)

    async def until_ready(self, timeout_s: float = 120) -> None:
        async def ready() -> None:
            while await self.api.health() is not Health.READY:
                assert self.process.exit_code() is None, "tritonserver exited before it was ready"
                await asyncio.sleep(0.2)
        await asyncio.wait_for(ready(), timeout_s)

    async def until_announced(self, kind: type, timeout_s: float = 30) -> str:
        async def seen() -> str:
            while True:
                for entry_id, fields in await self.redis.xrange(ev.lifecycle_stream(self.settings.deployment)):
                    if isinstance(ev.decode(fields), kind):
                        return entry_id.decode()
                await asyncio.sleep(0.1)
        return await asyncio.wait_for(seen(), timeout_s)

    async def gateway_sync_unroutes(self) -> None:
        """What gateway-sync publishes once the instance's servers are out of every gateway."""
        await self.until_announced(ev.InstanceDraining)
        unrouted = ev.InstanceUnrouted(deployment=self.settings.deployment, app_id=self.settings.app_id,
                                       instance_id=CID, seq=self.lifecycle.seq, endpoints=self.endpoints,
                                       open_requests=0)
        await StreamPublisher(self.redis).publish(ev.lifecycle_stream(self.settings.deployment), unrouted)

    async def close(self) -> None:
        await self.process.stop(5)
        await self.api.close()
        await self.redis.aclose()


def published(redis_url: str, deployment: str) -> List[ev.Event]:
    """The agent's own lifecycle events, then its acknowledgements, as Redis holds them."""
    client = redis.Redis.from_url(redis_url)
    try:
        lifecycle = [ev.decode(f) for _, f in client.xrange(ev.lifecycle_stream(deployment))]
        acks = [ev.decode(f) for _, f in client.xrange(ev.acks_stream(deployment))]
    finally:
        client.close()
    return [e for e in lifecycle if not isinstance(e, ev.InstanceUnrouted)] + acks


@asynccontextmanager
async def parts(redis_url: str, deployment: str, models, **options) -> AsyncIterator[Parts]:
    p = Parts(redis_url, deployment, models, **options)
    try:
        yield p
    finally:
        await p.close()


def test_triton_killed_before_ready_is_announced_once_with_its_signal_and_ends_the_agent(
        redis_url, deployment, triton_model_repo):
    async def scenario():
        async with parts(redis_url, deployment, triton_model_repo) as p:
            p.start_triton()
            os.killpg(p.process.pid, signal.SIGKILL)
            await asyncio.wait_for(p.shutdown.watch_process(), 30)
            return p.shutdown, p.status

    shutdown, status = asyncio.run(scenario())
    [stopped] = published(redis_url, deployment)
    assert isinstance(stopped, ev.InstanceStopped) and stopped.exit_code == -9
    assert stopped.reason == "tritonserver killed by SIGKILL before it was ready"
    assert shutdown.ended.is_set() and shutdown.exit_code == 137
    assert status.state == "stopped" and not status.triton_up


def test_a_failure_before_start_reports_failed_and_returns_its_exit_code(redis_url, deployment, triton_model_repo):
    async def scenario():
        async with parts(redis_url, deployment, triton_model_repo) as p:
            return await p.shutdown.failed_before_start("hdfs path /m does not exist", 3), p.status

    code, status = asyncio.run(scenario())
    [stopped] = published(redis_url, deployment)
    assert code == 3 and stopped.exit_code is None and stopped.reason == "hdfs path /m does not exist"
    assert status.state == "failed"


def test_a_drain_stops_triton_once_unrouted_and_idle_then_acknowledges(redis_url, deployment, triton_model_repo):
    async def scenario():
        async with parts(redis_url, deployment, triton_model_repo) as p:
            p.start_triton()
            await p.until_ready()
            watcher = asyncio.create_task(p.shutdown.watch_process())
            command = ev.DrainCommand(deployment=deployment, app_id="a", container_id=CID, timeout_s=30)
            p.shutdown.start_drain(command)
            p.shutdown.start_drain(command)  # a second drain joins the first
            await p.gateway_sync_unroutes()
            await asyncio.wait_for(p.shutdown.ended.wait(), 30)
            await p.shutdown.drained()
            await asyncio.wait_for(watcher, 5)
            return p.shutdown, p.status, command, p.process.exit_code()

    shutdown, status, command, triton_exit = asyncio.run(scenario())
    draining, stopped, ack = published(redis_url, deployment)
    assert isinstance(draining, ev.InstanceDraining) and draining.command_id == command.command_id
    assert isinstance(stopped, ev.InstanceStopped) and stopped.reason == DRAINED
    assert isinstance(ack, ev.CommandAck) and ack.status == ev.AckStatus.DONE and ack.command_id == command.command_id
    assert shutdown.exit_code == 0 and status.state == "stopped"
    assert triton_exit == 0, "tritonserver was stopped by the drain, gracefully"


def test_sigterm_announces_draining_then_stopped_and_exits_zero(redis_url, deployment, triton_model_repo):
    async def scenario():
        async with parts(redis_url, deployment, triton_model_repo) as p:
            p.start_triton()
            await p.until_ready()
            p.shutdown.on_terminate()
            p.shutdown.on_terminate()  # YARN may send it twice
            await asyncio.wait_for(p.shutdown.ended.wait(), 30)
            return p.shutdown, p.process.exit_code()

    shutdown, triton_exit = asyncio.run(scenario())
    draining, stopped = published(redis_url, deployment)
    assert isinstance(draining, ev.InstanceDraining) and draining.command_id is None
    assert stopped.reason == "SIGTERM" and shutdown.exit_code == 0
    assert triton_exit is not None and stopped.exit_code == triton_exit, "tritonserver is gone when stopped is said"


def test_sigterm_with_time_left_by_the_kill_delay_runs_the_same_drain(redis_url, deployment, triton_model_repo):
    async def scenario():
        async with parts(redis_url, deployment, triton_model_repo, terminate_timeout_s=20.0) as p:
            p.start_triton()
            await p.until_ready()
            p.shutdown.on_terminate()
            await p.gateway_sync_unroutes()
            await asyncio.wait_for(p.shutdown.ended.wait(), 30)
            await p.shutdown.drained()
            return p.shutdown

    shutdown = asyncio.run(scenario())
    draining, stopped = published(redis_url, deployment)
    assert isinstance(draining, ev.InstanceDraining) and draining.command_id is None and draining.timeout_s == 20.0
    assert stopped.reason == f"SIGTERM, {DRAINED}"
    assert shutdown.exit_code == 0
