"""How the instance ends, each way through one ``_finish``: tritonserver exiting by itself,
the drain handshake a DrainCommand starts (its decisions in drain.py), SIGTERM from YARN,
or a failure before Triton started. The agent never restarts Triton: the AM decides."""
from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

from redis.asyncio import Redis

from tarn_shared import events as ev
from tarn_shared.errors import SchemaError
from tarn_shared.streams import REDIS_DOWN

from .agent_metrics import AgentStatus
from .announcer import Announcer
from .drain import DrainState, drain_step
from .errors import TritonError
from .settings import NodeAgentSettings
from .telemetry import MetricsParseError, parse_triton_metrics
from .triton import TritonApi, TritonProcess

log = logging.getLogger(__name__)
DRAIN_POLL_S = 0.25
KILL_AFTER_EXIT_TIMEOUT_S = 10.0  # beyond Triton's own --exit-timeout-secs


@dataclass(eq=False)
class Shutdown:
    settings: NodeAgentSettings
    process: TritonProcess
    api: TritonApi
    announcer: Announcer
    status: AgentStatus
    redis: Redis
    ack: Callable[..., Awaitable[None]]  # Acks.send
    terminating: bool = field(default=False, init=False)
    ended: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    exit_code: int = field(default=0, init=False)
    _drain_task: Optional[asyncio.Task] = field(default=None, init=False)

    async def _finish(self, code: Optional[int], reason: str, exit_code: int = 0) -> None:
        """Triton is gone (``code``: its exit code, None if it never ran): say so, and end the agent."""
        self.status.triton_up = False
        await self.announcer.stopped(code, reason)
        self.exit_code = exit_code
        self.ended.set()

    # ------------------------------------------------------------------ before Triton
    async def failed_before_start(self, reason: str, exit_code: int) -> int:
        s = self.settings
        log.error("node-agent cannot start Triton", extra={"reason": reason, "container_id": s.container_id,
                                                           "app_id": s.app_id})
        self.status.start_failed = True
        await self._finish(None, reason, exit_code)
        return exit_code

    async def terminated_before_start(self) -> int:
        await self._finish(None, "terminated before start")
        return self.exit_code

    # ------------------------------------------------------------------ Triton exits by itself
    async def watch_process(self) -> None:
        code = await self.process.wait()
        if self.ended.is_set() or self._drain_task is not None or self.terminating:
            return
        reason = _exit_reason(code)
        if self.announcer.state == ev.InstanceState.STARTING:
            reason += " before it was ready"
        log.error("tritonserver exited", extra={"exit_code": code, "reason": reason})
        await self._finish(code, reason, _shell_code(code) or 1)

    # ------------------------------------------------------------------ drain
    def start_drain(self, command: ev.DrainCommand) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain(command))

    async def drained(self) -> None:
        """Waits for a drain under way to finish (its stopped event and its ack)."""
        if self._drain_task is not None and not self._drain_task.done():
            await asyncio.gather(self._drain_task, return_exceptions=True)

    async def _drain(self, command: ev.DrainCommand) -> None:
        loop = asyncio.get_running_loop()
        entry = await self.announcer.draining(command.command_id, command.timeout_s)
        unrouted = asyncio.Event()
        watcher = asyncio.create_task(self._watch_unrouted(entry or "$", unrouted))
        state = DrainState(started_at=loop.time(), timeout_s=command.timeout_s,
                           unrouted_timeout_s=min(self.settings.drain_unrouted_timeout_s, command.timeout_s))
        try:
            while True:
                snapshot = None
                try:
                    snapshot = parse_triton_metrics(await self.api.metrics_text())
                except (TritonError, MetricsParseError):
                    pass
                decision, state = drain_step(state, loop.time(), unrouted_seen=unrouted.is_set(), snapshot=snapshot)
                if decision.stop or self.process.exit_code() is not None:
                    break
                await asyncio.sleep(DRAIN_POLL_S)
        finally:
            watcher.cancel()
        reason = decision.reason if decision.stop else "tritonserver exited while draining"
        log.info("stopping tritonserver", extra={"reason": reason, "command_id": command.command_id})
        code = await self._stop_triton()
        await self._finish(code, reason)
        await self.ack(command, ev.AckStatus.DONE, f"{reason}; tritonserver exit code {code}", remember=True)

    async def _watch_unrouted(self, after_id: str, unrouted: asyncio.Event) -> None:
        """gateway-sync's InstanceUnrouted for this instance, read after our draining entry.
        A plain XREAD: a bounded wait for one reply, not a consumer of the stream."""
        stream = ev.lifecycle_stream(self.settings.deployment)
        last = after_id
        while not unrouted.is_set():
            try:
                reply = await self.redis.xread({stream: last}, block=500, count=100)
            except REDIS_DOWN:
                await asyncio.sleep(0.5)
                continue
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    try:
                        event = ev.decode(fields)
                    except SchemaError:
                        continue
                    if isinstance(event, ev.InstanceUnrouted) and event.instance_id == self.settings.container_id:
                        log.info("gateway-sync confirmed the instance unrouted")
                        unrouted.set()

    # ------------------------------------------------------------------ SIGTERM
    def on_terminate(self) -> None:
        if self.terminating:
            return
        self.terminating = True
        asyncio.get_running_loop().create_task(self._terminate())

    async def _terminate(self) -> None:
        """SIGTERM from YARN: no time for the handshake (the NodeManager kills soon after);
        announce draining, pass SIGTERM on to Triton, which finishes in-flight requests."""
        if self.process.pid is None or self.ended.is_set():
            return  # still staging: the agent notices and stops before starting Triton
        if self._drain_task is not None:
            self.process.signal(signal.SIGTERM)
            return
        await self.announcer.draining(None, None)
        await self._finish(await self._stop_triton(), "SIGTERM")

    async def _stop_triton(self) -> Optional[int]:
        return await self.process.stop(grace_s=self.settings.exit_timeout_s + KILL_AFTER_EXIT_TIMEOUT_S)


def _exit_reason(code: Optional[int]) -> str:
    if code is None:
        return "tritonserver state unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"tritonserver killed by {name}"
    return f"tritonserver exited with code {code}"


def _shell_code(code: Optional[int]) -> int:
    if code is None:
        return 1
    return 128 - code if code < 0 else code
