"""The AM's commands to this container: drain (handed to the shutdown), load and unload a
model (through Triton's repository API, measured by model_loads.py; an unload routed away
first by model_unloader.py). Each is acknowledged
on the deployment's acks stream, a load's ack with the model's measured state; one re-sent
because its ack was not seen gets the same ack again."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Dict, Optional

from redis.asyncio import Redis

from tarn_shared import events as ev
from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.streams import StreamPublisher

from .agent_metrics import AgentStatus
from .announcer import PUBLISH_RETRY_S
from .errors import TritonError
from .lifecycle import Lifecycle
from .model_loads import ModelLoads
from .model_unloader import ModelUnloader
from .settings import NodeAgentSettings

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Acks:
    """Acknowledgements, and the final ones remembered by command id."""

    settings: NodeAgentSettings
    publisher: StreamPublisher
    done: Dict[str, ev.CommandAck] = field(default_factory=dict, init=False)

    async def send(self, command: ev.Command, status: ev.AckStatus, message: str, remember: bool = False,
                   model_state: Optional[ev.ModelOnInstance] = None) -> None:
        s = self.settings
        ack = ev.CommandAck(deployment=s.deployment, app_id=s.app_id, container_id=s.container_id,
                            command_id=command.command_id, command_type=command.type, status=status,
                            message=message, model_state=model_state)
        if remember:
            self.done[command.command_id] = ack
        await self.publisher.publish(ev.acks_stream(s.deployment), ack, retry_for_s=PUBLISH_RETRY_S)


@dataclass(eq=False)
class Commands:
    settings: NodeAgentSettings
    redis: Redis
    loads: ModelLoads
    unloader: ModelUnloader
    acks: Acks
    lifecycle: Lifecycle
    status: AgentStatus
    start_drain: Callable[[ev.DrainCommand], None]
    models_changed: Callable[[], Awaitable[None]]  # after a load or an unload

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        consumer = StreamConsumer(
            self.redis, [ev.commands_stream(s.deployment, s.container_id)],
            ConsumerConfig(group="node-agent", consumer=s.container_id, block_ms=500, reclaim_idle_ms=10_000),
            self._on_command)
        await consumer.run(stop)

    async def _on_command(self, stream: str, entry_id: str, event: ev.Event) -> None:
        if not isinstance(event, (ev.DrainCommand, ev.LoadModelCommand, ev.UnloadModelCommand)):
            log.warning("ignoring a non-command on the commands stream", extra={"event_type": event.type})
            return
        if event.container_id != self.settings.container_id:
            log.warning("ignoring a command addressed to another container",
                        extra={"command_id": event.command_id, "container_id": event.container_id})
            return
        done = self.acks.done.get(event.command_id)
        if done is not None:  # re-sent because our ack was not seen: acknowledge again
            await self.acks.send(event, done.status, done.message, model_state=done.model_state)
            return
        self.status.commands_handled += 1
        if isinstance(event, ev.DrainCommand):
            self.start_drain(event)
            await self.acks.send(event, ev.AckStatus.ACCEPTED, "draining")
            return
        if self.lifecycle.state in (ev.InstanceState.DRAINING, ev.InstanceState.STOPPED):
            await self.acks.send(event, ev.AckStatus.FAILED, "instance is draining", remember=True)
            return
        message = ""
        try:
            if isinstance(event, ev.LoadModelCommand):
                state = await self.loads.load(event.model, event.config)
                self.unloader.loaded(event.model)
            else:  # routed away first, then unloaded (model_unloader.py)
                state, message = await self.unloader.unload(event.model)
        except TritonError as exc:
            await self.acks.send(event, ev.AckStatus.FAILED, str(exc), remember=True)
            await self.models_changed()  # a failed unload's model is announced again
            return
        await self.acks.send(event, ev.AckStatus.DONE, message, remember=True, model_state=state)
        await self.models_changed()
