"""Drains that finish the work: real node-agents and tritonservers behind a real HAProxy,
driven by a real gateway-sync on the real Redis and ZooKeeper. The model takes 2 s a
request (tests/slow_models/slow), so requests are executing, not pending, when the drain
comes; Triton's --exit-timeout-secs is 1 s, so stopping it mid-request fails requests."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Dict, Optional

import pytest

from tarn_gateway_sync.haproxy import RuntimeApi, parse_sessions
from tarn_gateway_sync.plan import Admin, ServerState, server_name
from tarn_shared import events as ev
from tests.gateway_sync.support import EventPublisher, in_process, settings_for
from tests.support.polling import until

from tests.node_agent.agent_process import AgentProcess
from tests.support.inference_load import InferenceLoad

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
SLOW_MODELS = Path(__file__).resolve().parents[1] / "slow_models"
DRAINED, OTHER = "container_1700000000000_0042_01_000002", "container_1700000000000_0042_01_000003"
KILL_DELAY_MS = 45_000
FAST_STOP = ["--exit-timeout-s", "1"]


class Backend:
    """The test's HAProxy backend, read through the Runtime API."""

    def __init__(self, socket_path: str, name: str) -> None:
        self.api = RuntimeApi(socket_path)
        self.name = name

    async def server(self, agent: AgentProcess) -> Optional[ServerState]:
        named = server_name("tarn-", agent.address)
        return next((s for s in await self.api.servers(self.name) if s.name == named), None)

    async def open_requests(self, agent: AgentProcess) -> int:
        """The server's scur + qcur, read here only to prove the drain came mid-request."""
        stat = parse_sessions(await self.api.command(f"show stat {self.name} 4 -1"))
        return stat.get(server_name("tarn-", agent.address), 0)

    async def serving(self, *agents: AgentProcess) -> bool:
        servers = [await self.server(a) for a in agents]
        return all(s is not None and s.admin is Admin.READY and s.operational_up for s in servers)


def _yarn_site(directory: Path, kill_delay_ms: int) -> Dict[str, str]:
    directory.mkdir()
    (directory / "yarn-site.xml").write_text(
        "<configuration><property><name>yarn.nodemanager.sleep-delay-before-sigkill.ms</name>"
        f"<value>{kill_delay_ms}</value></property></configuration>\n")
    return {"HADOOP_CONF_DIR": str(directory)}


@pytest.fixture
async def world(stack, redis_url, deployment, zk_hosts, haproxy_backend, tmp_path):
    """gateway-sync serving the test's deployment on its own HAProxy backend, and a copy of
    the slow model repository; yields a function that starts agents on it."""
    repository = tmp_path / "models"
    shutil.copytree(SLOW_MODELS, repository)
    backend = haproxy_backend["dyn"]
    publisher = EventPublisher(redis_url, deployment)
    await publisher.record(zk_hosts, backend["name"])
    agents = []

    def start(container_id: str, extra=(), env=None) -> AgentProcess:
        agent = AgentProcess(tmp_path / container_id, redis_url, deployment, container_id, repository,
                             extra=list(extra), env=env)
        agents.append(agent)
        return agent

    try:
        async with in_process(settings_for(stack, zk_hosts, deployment=deployment, drain_timeout_s=120.0)):
            yield start, Backend(haproxy_backend["socket"], backend["name"]), f"http://127.0.0.1:{backend['port']}"
    finally:
        for agent in agents:
            await asyncio.to_thread(agent.stop)
        await publisher.close()


async def _serving(start, backend, drained_extra=(), env=None):
    drained = start(DRAINED, [*FAST_STOP, *drained_extra], env)
    other = start(OTHER, FAST_STOP)
    for agent in (drained, other):
        await asyncio.to_thread(agent.wait_ready)
    await until(lambda: backend.serving(drained, other), 30, "both instances served by HAProxy")
    return drained, other


@pytest.mark.parametrize("how", ["drain command", "SIGTERM"])
async def test_a_drain_mid_request_under_load_finishes_every_request(world, tmp_path, deployment, how):
    start, backend, frontend = world
    env = _yarn_site(tmp_path / "hadoop-conf", KILL_DELAY_MS) if how == "SIGTERM" else None
    drained, other = await _serving(start, backend, env=env)
    load = InferenceLoad([frontend], "slow", threads=8).start()
    try:
        open_at_drain = await until(lambda: backend.open_requests(drained), 30, "requests executing on it")
        drain_at = time.monotonic()
        if how == "SIGTERM":
            drained.process.send_signal(signal.SIGTERM)
        else:
            drained.command(ev.DrainCommand(deployment=deployment, app_id="a", container_id=DRAINED, timeout_s=60))
        stopped = await asyncio.to_thread(drained.wait_for, ev.InstanceStopped, 90, "instance.stopped")
        exit_code = await asyncio.to_thread(drained.process.wait, 60)
        stopped_at = time.monotonic()
        await asyncio.sleep(3)  # the load goes on, on the other instance
    finally:
        await asyncio.to_thread(load.stop)

    counts = [e.open_requests for e in drained.mine(ev.InstanceUnrouted)]
    report = (f"{how}: {len(load.outcomes)} requests, {len(load.failed)} failed; {open_at_drain} open on the drained "
              f"server at the drain; gateway-sync's counts {counts}; agent gone {stopped_at - drain_at:.1f} s after")
    print(report)
    assert load.failed == [], report
    assert open_at_drain >= 1
    prefix = "SIGTERM, " if how == "SIGTERM" else ""
    assert stopped.reason.startswith(f"{prefix}drained: unrouted, 0 requests open at the gateways"), stopped.reason
    assert counts and counts[-1] == 0, report
    assert exit_code == 0 and load.succeeded_after(stopped_at) > 0
    if how == "SIGTERM":
        assert stopped_at - drain_at < KILL_DELAY_MS / 1000, "the drain must end before the NodeManager's SIGKILL"


async def test_an_unready_but_alive_instance_is_drained_and_its_open_requests_finish(world):
    start, backend, frontend = world
    drained, other = await _serving(start, backend, ["--health-interval-s", "0.5", "--probe-timeout-s", "0.5"])
    load = InferenceLoad([frontend], "slow", threads=6).start()
    try:
        await until(lambda: backend.open_requests(drained), 30, "requests executing on it")
        os.kill(drained.triton_pid, signal.SIGSTOP)  # slow, not dead: probes time out
        try:
            await asyncio.to_thread(drained.wait_for, ev.InstanceUnready, 30, "instance.unready")
            server = await until(lambda: _draining(backend, drained), 10, "its server in drain")
            open_while_unready = await backend.open_requests(drained)
        finally:
            os.kill(drained.triton_pid, signal.SIGCONT)
        await until(lambda: backend.serving(drained, other), 30, "served again once ready")
        await asyncio.sleep(2)
    finally:
        await asyncio.to_thread(load.stop)

    report = (f"unready: {len(load.outcomes)} requests, {len(load.failed)} failed; {open_while_unready} open on the "
              f"unready server, kept in {server.admin.value}")
    print(report)
    assert load.failed == [], report
    assert open_while_unready >= 1, "its sessions were shut"


async def _draining(backend: Backend, agent: AgentProcess) -> Optional[ServerState]:
    server = await backend.server(agent)
    return server if server is not None and server.admin is Admin.DRAIN else None
