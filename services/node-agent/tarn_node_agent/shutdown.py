"""How the instance ends, each way through one ``_finish``: tritonserver exiting by itself,
the drain a DrainCommand starts, SIGTERM from YARN (the same drain, bounded by what the
NodeManager's kill delay leaves), or a failure before Triton started. The drain itself is
drainer.py's (its decisions drain.py's). The agent never restarts Triton: the AM decides."""
from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

from tarn_shared import events as ev

from .agent_metrics import AgentStatus
from .announcer import Announcer
from .drain import STOP_RESERVE_S
from .drainer import Drainer
from .settings import NodeAgentSettings
from .triton import TritonProcess

log = logging.getLogger(__name__)
KILL_AFTER_EXIT_TIMEOUT_S = 10.0  # beyond Triton's own --exit-timeout-secs


@dataclass(eq=False)
class Shutdown:
    settings: NodeAgentSettings
    process: TritonProcess
    announcer: Announcer
    status: AgentStatus
    drainer: Drainer
    ack: Callable[..., Awaitable[None]]  # Acks.send
    terminate_timeout_s: float = 0.0  # drain.terminate_timeout_s: how long a SIGTERM drain may take
    terminating: bool = field(default=False, init=False)
    ended: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    exit_code: int = field(default=0, init=False)
    _drain_task: Optional[asyncio.Task] = field(default=None, init=False)
    _terminate_by: Optional[float] = field(default=None, init=False)  # loop time; the kill follows

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
            self._drain_task = asyncio.create_task(self._drain(command, command.timeout_s))

    async def drained(self) -> None:
        """Waits for a drain under way to finish (its stopped event and its ack)."""
        if self._drain_task is not None and not self._drain_task.done():
            await asyncio.gather(self._drain_task, return_exceptions=True)

    async def _drain(self, command: Optional[ev.DrainCommand], timeout_s: float) -> None:
        reason = await self.drainer.run(command.command_id if command else None, timeout_s,
                                        deadline=lambda: self._terminate_by)
        if command is None:
            reason = f"SIGTERM, {reason}"
        log.info("stopping tritonserver", extra={"reason": reason,
                                                 "command_id": command.command_id if command else None})
        code = await self._stop_triton()
        await self._finish(code, reason)
        if command is not None:
            await self.ack(command, ev.AckStatus.DONE, f"{reason}; tritonserver exit code {code}", remember=True)

    # ------------------------------------------------------------------ SIGTERM
    def on_terminate(self) -> None:
        if self.terminating:
            return
        self.terminating = True
        loop = asyncio.get_running_loop()
        self._terminate_by = loop.time() + self.terminate_timeout_s
        loop.create_task(self._terminate())

    async def _terminate(self) -> None:
        """SIGTERM from YARN: the NodeManager kills the container after its kill delay. The
        drain runs in what that leaves (a drain under way now ends by then too)."""
        if self.process.pid is None or self.ended.is_set():
            return  # still staging: the agent notices and stops before starting Triton
        if self._drain_task is not None:
            return
        if self.terminate_timeout_s > 0:
            self._drain_task = asyncio.create_task(self._drain(None, self.terminate_timeout_s))
            return
        log.warning("SIGTERM leaves no time to drain: raise yarn.nodemanager.sleep-delay-before-sigkill.ms "
                    "(docs/deploy.md) or set terminate_drain_timeout_s")
        await self.announcer.draining(None, None)
        await self._finish(await self._stop_triton(), "SIGTERM")

    async def _stop_triton(self) -> Optional[int]:
        grace_s = self.settings.exit_timeout_s + KILL_AFTER_EXIT_TIMEOUT_S
        if self._terminate_by is not None:  # be done before the NodeManager's SIGKILL
            left_s = self._terminate_by + STOP_RESERVE_S - asyncio.get_running_loop().time()
            grace_s = max(1.0, min(grace_s, left_s - 1.0))
        return await self.process.stop(grace_s=grace_s)


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
