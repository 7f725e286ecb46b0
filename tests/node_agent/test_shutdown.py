"""Every way the instance ends goes through one stopped announcement, with fakes for
Triton and Redis: no servers, each ending read alone."""
from __future__ import annotations

import asyncio
import sys
from typing import List, Optional, Tuple

from tarn_shared import events as ev
from tarn_node_agent.agent_metrics import AgentStatus
from tarn_node_agent.announcer import Announcer
from tarn_node_agent.commands import Acks
from tarn_node_agent.drainer import Drainer
from tarn_node_agent.lifecycle import Lifecycle
from tarn_node_agent.settings import NodeAgentSettings
from tarn_node_agent.shutdown import Shutdown

CID = "container_1700000000000_0042_01_000002"
IDLE_METRICS = 'nv_inference_request_success{model="m",version="1"} 5\n' \
               'nv_inference_pending_request_count{model="m",version="1"} 0\n'


class Publisher:
    def __init__(self) -> None:
        self.sent: List[Tuple[str, ev.Event]] = []

    async def publish(self, stream: str, event: ev.Event, **_options) -> str:
        self.sent.append((stream, event))
        return f"{len(self.sent)}-0"

    def events(self) -> List[ev.Event]:
        return [event for _, event in self.sent]


class Process:
    """tritonserver as the shutdown sees it: running until stopped, or exiting with ``code``."""

    def __init__(self, code: Optional[int] = None) -> None:
        self.pid = 4242
        self.signals: List[int] = []
        self._code = code
        self._exited = asyncio.Event()
        if code is not None:
            self._exited.set()

    async def wait(self) -> Optional[int]:
        await self._exited.wait()
        return self._code

    def exit_code(self) -> Optional[int]:
        return self._code if self._exited.is_set() else None

    def signal(self, signum: int) -> None:
        self.signals.append(signum)

    async def stop(self, grace_s: float) -> int:
        self._code = 0
        self._exited.set()
        return 0


class Api:
    async def metrics_text(self) -> str:
        return IDLE_METRICS


class Redis:
    """Answers the drain's XREAD with gateway-sync's unrouted event once."""

    def __init__(self, unrouted: Optional[ev.InstanceUnrouted]) -> None:
        self._reply = [(b"lifecycle", [(b"9-0", ev.encode(unrouted))])] if unrouted else None

    async def xread(self, streams, block: int, count: int):
        reply, self._reply = self._reply, None
        if reply is None:
            await asyncio.sleep(block / 1000)
        return reply


def parts(process: Process, unrouted: bool = False, terminate_timeout_s: float = 0.0):
    settings = NodeAgentSettings(model_repository="/nonexistent/models", container_id=CID, tritonserver=sys.executable,
                                 drain_unrouted_timeout_s=5.0)
    endpoints = ev.Endpoints(host="h", http_port=8000, grpc_port=8001, metrics_port=8002)
    lifecycle = Lifecycle(settings.deployment, settings.app_id, CID, endpoints)
    status = AgentStatus(instance_state=lambda: lifecycle.state)
    publisher = Publisher()
    gone = ev.InstanceUnrouted(deployment=settings.deployment, app_id=settings.app_id, instance_id=CID, seq=1,
                               endpoints=endpoints, open_requests=0) if unrouted else None
    announcer = Announcer(lifecycle, publisher, settings.deployment)
    drainer = Drainer(settings, Api(), process, announcer, Redis(gone))
    shutdown = Shutdown(settings, process, announcer, status, drainer, Acks(settings, publisher).send,
                        terminate_timeout_s)
    return shutdown, publisher, status


def test_triton_exiting_before_ready_is_announced_once_with_its_signal_and_ends_the_agent():
    async def scenario():
        shutdown, publisher, status = parts(Process(code=-9))
        await shutdown.watch_process()
        return shutdown, publisher, status

    shutdown, publisher, status = asyncio.run(scenario())
    [stopped] = publisher.events()
    assert isinstance(stopped, ev.InstanceStopped) and stopped.exit_code == -9
    assert stopped.reason == "tritonserver killed by SIGKILL before it was ready"
    assert shutdown.ended.is_set() and shutdown.exit_code == 137
    assert status.state == "stopped" and not status.triton_up


def test_a_failure_before_start_reports_failed_and_returns_its_exit_code():
    async def scenario():
        shutdown, publisher, status = parts(Process())
        return await shutdown.failed_before_start("hdfs path /m does not exist", 3), publisher, status

    code, publisher, status = asyncio.run(scenario())
    [stopped] = publisher.events()
    assert code == 3 and stopped.exit_code is None and stopped.reason == "hdfs path /m does not exist"
    assert status.state == "failed"


def test_a_drain_stops_triton_once_unrouted_and_idle_then_acknowledges():
    async def scenario():
        process = Process()
        shutdown, publisher, status = parts(process, unrouted=True)
        watcher = asyncio.create_task(shutdown.watch_process())
        command = ev.DrainCommand(deployment="triton", app_id="a", container_id=CID, timeout_s=30)
        shutdown.start_drain(command)
        shutdown.start_drain(command)  # a second drain joins the first
        await asyncio.wait_for(shutdown.ended.wait(), 10)
        await shutdown.drained()
        await asyncio.wait_for(watcher, 1)
        return shutdown, publisher, status, command

    shutdown, publisher, status, command = asyncio.run(scenario())
    draining, stopped, ack = publisher.events()
    assert isinstance(draining, ev.InstanceDraining) and draining.command_id == command.command_id
    assert isinstance(stopped, ev.InstanceStopped) and stopped.reason == "drained: unrouted, 0 requests open at the gateways, no request in Triton"
    assert isinstance(ack, ev.CommandAck) and ack.status == ev.AckStatus.DONE and ack.command_id == command.command_id
    assert shutdown.exit_code == 0 and status.state == "stopped"


def test_sigterm_announces_draining_then_stopped_and_exits_zero():
    async def scenario():
        shutdown, publisher, status = parts(Process())
        shutdown.on_terminate()
        shutdown.on_terminate()  # YARN may send it twice
        await asyncio.wait_for(shutdown.ended.wait(), 5)
        return shutdown, publisher

    shutdown, publisher = asyncio.run(scenario())
    draining, stopped = publisher.events()
    assert isinstance(draining, ev.InstanceDraining) and draining.command_id is None
    assert stopped.reason == "SIGTERM" and stopped.exit_code == 0 and shutdown.exit_code == 0


def test_sigterm_with_time_left_by_the_kill_delay_runs_the_same_drain():
    async def scenario():
        shutdown, publisher, status = parts(Process(), unrouted=True, terminate_timeout_s=20.0)
        shutdown.on_terminate()
        await asyncio.wait_for(shutdown.ended.wait(), 10)
        await shutdown.drained()
        return shutdown, publisher

    shutdown, publisher = asyncio.run(scenario())
    draining, stopped = publisher.events()
    assert isinstance(draining, ev.InstanceDraining) and draining.command_id is None and draining.timeout_s == 20.0
    assert stopped.reason == "SIGTERM, drained: unrouted, 0 requests open at the gateways, no request in Triton"
    assert shutdown.exit_code == 0
