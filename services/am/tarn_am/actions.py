"""The control loop's act phase: one reconcile action carried out through the yarn and bus adapters."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable

from tarn_shared import events as ev

from .bus import RedisBus
from .containers import Action, ContainerLost, ReleaseContainer, SendDrain, StartContainer
from .yarn import YarnAdapter

log = logging.getLogger("tarn_am.controller")  # the loop's log, as before the split


async def carry_out(action: Action, deployment: str, yarn: YarnAdapter, bus: RedisBus,
                    lost_events: Callable[[ContainerLost], Iterable[ev.Event]]) -> None:
    """``lost_events`` says what a lost container's announcement is (announcements.py)."""
    app_id = yarn.app_id
    if isinstance(action, StartContainer):
        await asyncio.to_thread(yarn.start, action.service)
        await bus.publish_lifecycle(ev.ContainerRequested(
            deployment=deployment, app_id=app_id, service=action.service,
            reason=f"{action.reason} on {action.host}"))
    elif isinstance(action, SendDrain):
        await bus.send_command(ev.DrainCommand(
            deployment=deployment, app_id=app_id, container_id=action.instance_id,
            command_id=action.command_id, timeout_s=action.timeout_s))
        if action.first:
            log.info("drain commanded", extra={"container_id": action.instance_id,
                                               "command_id": action.command_id})
    elif isinstance(action, ReleaseContainer):
        await asyncio.to_thread(yarn.release, action.skein_id)
        log.info("container released", extra={"container_id": action.instance_id, "reason": action.reason})
    elif isinstance(action, ContainerLost):
        log.warning("container lost", extra={"container_id": action.instance_id, "host": action.host,
                                             "reason": action.exit_message,
                                             "failures": action.failures_in_window,
                                             "crash_looping": action.crash_looping})
        for event in lost_events(action):
            await bus.publish_lifecycle(event)
