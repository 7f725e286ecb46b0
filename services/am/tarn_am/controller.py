"""tarn-am's control loop: observe (skein, the streams), decide (fleet.decide, the autoscaling
policy), act (through the yarn and redis adapters). Each phase has its own error handling,
is timed into a metric, and can never end the loop.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Tuple

from tarn_shared import events as ev
from tarn_shared.errors import TarnError
from tarn_shared.membership import apply_member

from . import fleet, scaling
from .bus import RedisBus
from .settings import AmSettings
from .view import FleetView, ScalingDecision
from .yarn import KV_DESIRED, YarnAdapter

log = logging.getLogger(__name__)
CONTAINER_ID_RE = re.compile(r"^container_(?:e\d+_)?(\d+_\d+_\d+)_\d+$")


@dataclass
class LoopStats:
    rounds: int = 0
    phase_seconds: Dict[str, float] = field(default_factory=dict)
    phase_errors: Counter = field(default_factory=Counter)
    last_round_at: Optional[float] = None
    snapshots: int = 0


def attempt_of(container_id: str) -> Optional[str]:
    """``container_[e<epoch>_]<ts>_<app>_<attempt>_<n>`` -> "<ts>_<app>_<attempt>"."""
    match = CONTAINER_ID_RE.match(container_id)
    return match.group(1) if match else None


class TargetError(TarnError):
    """A requested instance count outside what the deployment allows."""


class Controller:
    def __init__(self, settings: AmSettings, yarn: YarnAdapter, bus: RedisBus, view: FleetView,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.yarn = yarn
        self.bus = bus
        self.view = view
        self.clock = clock
        self.slots = settings.slot_list()
        self.policy = settings.policy()
        self.state = fleet.FleetState()
        self.desired = settings.initial_instances if settings.initial_instances is not None else settings.min_instances
        self.containers: Tuple[fleet.ObservedContainer, ...] = ()
        self.decision: Optional[fleet.Decision] = None
        self.stats = LoopStats()
        self.autoscale_enabled = settings.autoscale
        self.autoscale_config = scaling.policy_config(
            scale_up=settings.scale_up, scale_down=settings.scale_down, min_instances=settings.min_instances,
            max_instances=settings.max_instances, cooldown_s=settings.cooldown_s)
        self.hook_state = scaling.HookState()
        self._snapshot_seq = 0
        self._snapshot_version = -1
        self._snapshot_at = 0.0
        self._published_states: Dict[str, str] = {}
        self._wake = asyncio.Event()

    # -- start-up --------------------------------------------------------------------
    async def take_over(self) -> None:
        """Adopt whatever skein already runs (a restarted tarn-am) without touching it."""
        self.containers = await asyncio.to_thread(self.yarn.containers)
        self.state = fleet.takeover_state(self.containers)
        self._published_states = {c.skein_id: c.state for c in self.containers}
        stored = await asyncio.to_thread(self.yarn.kv_get, KV_DESIRED)
        if stored is not None and stored.isdigit():
            self.desired = int(stored)
            self._record(ScalingDecision(self.clock(), "takeover", self.desired, self.desired,
                                         "target kept from the previous tarn-am"))
            return
        try:
            # A new application attempt has an empty key-value store; Redis may still know.
            remembered = await self.bus.get_desired()
        except Exception:
            remembered = None
        if remembered is not None:
            self.desired = min(remembered, self.settings.max_instances)
            reason = "target kept from the previous application attempt"
        else:
            reason = "initial instance count"
        await self._store_target()
        self._record(ScalingDecision(self.clock(), "start", 0, self.desired, reason))

    async def _store_target(self) -> None:
        await asyncio.to_thread(self.yarn.kv_put, KV_DESIRED, str(self.desired))
        try:
            await self.bus.put_desired(self.desired)
        except Exception as exc:  # Redis down: skein's store still has it
            log.warning("could not remember the target in Redis", extra={"error": repr(exc)})
        running = sum(1 for c in self.containers if c.active)
        log.info("took over", extra={"app_id": self.yarn.app_id, "active_containers": running,
                                     "desired": self.desired})

    # -- the target ------------------------------------------------------------------
    async def set_target(self, count: int, source: str, reason: str) -> int:
        if not 0 <= count <= self.settings.max_instances:
            raise TargetError(f"count must lie between 0 and max-instances ({self.settings.max_instances})")
        previous = self.desired
        self.desired = count
        await self._store_target()
        self._record(ScalingDecision(self.clock(), source, previous, count, reason))
        self._wake.set()
        return count

    def _record(self, decision: ScalingDecision) -> None:
        self.view.decisions.append(decision)
        log.info("target", extra={"source": decision.source, "previous": decision.previous,
                                  "target": decision.target, "reason": decision.reason})

    # -- the loop --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.round()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.loop_interval_s)
            except asyncio.TimeoutError:
                pass

    def wake(self) -> None:
        self._wake.set()

    async def round(self) -> None:
        self.stats.rounds += 1
        now = self.clock()
        await self._phase("observe", self._observe)
        await self._phase("autoscale", lambda: self._autoscale(now))
        actions = await self._phase("decide", lambda: self._decide(now))
        if actions:
            await self._phase("act", lambda: self._act(actions, now))
        await self._phase("announce", lambda: self._announce(now))
        self.stats.last_round_at = now

    async def _phase(self, name: str, body):
        started = time.perf_counter()
        try:
            result = body()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one phase failing must never end the loop
            self.stats.phase_errors[name] += 1
            log.warning("control loop phase failed", extra={"phase": name, "error": repr(exc)})
            return None
        finally:
            self.stats.phase_seconds[name] = time.perf_counter() - started

    async def _observe(self) -> None:
        self.containers = await asyncio.to_thread(self.yarn.containers)

    def _draining_instances(self) -> frozenset:
        return frozenset(d.instance_id for d in self.state.drains.values())

    async def _autoscale(self, now: float) -> None:
        if not self.autoscale_enabled:
            return
        observed = scaling.observation(self.view.membership.members, self.view.telemetry,
                                       self._draining_instances())
        decision, self.hook_state = scaling.autoscale_step(self.autoscale_config, self.desired, observed, now,
                                                           self.hook_state)
        if decision is None:
            return
        self.view.policy_reason = decision.reason
        if decision.desired_count != self.desired:
            previous = self.desired
            self.desired = decision.desired_count
            await self._store_target()
            self._record(ScalingDecision(now, "autoscale", previous, self.desired, decision.reason))

    def _decide(self, now: float) -> List[object]:
        observation = fleet.Observation(
            containers=self.containers,
            members=self.view.membership.members,
            last_heartbeat=dict(self.view.heartbeats),
            acked_commands=frozenset(self.view.acked),
        )
        self.decision, self.state = fleet.decide(self.desired, self.slots, observation, now, self.state, self.policy)
        return list(self.decision.actions)

    async def _act(self, actions: List[object], now: float) -> None:
        app_id = self.yarn.app_id
        deployment = self.settings.deployment
        for action in actions:
            try:
                if isinstance(action, fleet.StartContainer):
                    await asyncio.to_thread(self.yarn.start, action.service)
                    await self.bus.publish_lifecycle(ev.ContainerRequested(
                        deployment=deployment, app_id=app_id, service=action.service,
                        reason=f"{action.reason} on {action.host}"))
                elif isinstance(action, fleet.SendDrain):
                    await self.bus.send_command(ev.DrainCommand(
                        deployment=deployment, app_id=app_id, container_id=action.instance_id,
                        command_id=action.command_id, timeout_s=action.timeout_s))
                    if action.first:
                        log.info("drain commanded", extra={"container_id": action.instance_id,
                                                           "command_id": action.command_id})
                elif isinstance(action, fleet.ReleaseContainer):
                    await asyncio.to_thread(self.yarn.release, action.skein_id)
                    log.info("container released", extra={"container_id": action.instance_id,
                                                          "reason": action.reason})
                elif isinstance(action, fleet.ContainerLost):
                    await self._announce_lost(action)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.phase_errors["act"] += 1
                log.warning("action failed; the next round decides again",
                            extra={"action": type(action).__name__, "error": repr(exc), "app_id": app_id})

    async def _announce_lost(self, lost: fleet.ContainerLost) -> None:
        deployment, app_id = self.settings.deployment, self.yarn.app_id
        log.warning("container lost", extra={"container_id": lost.instance_id, "host": lost.host,
                                             "reason": lost.exit_message, "failures": lost.failures_in_window,
                                             "crash_looping": lost.crash_looping})
        await self.bus.publish_lifecycle(ev.ContainerFailed(
            deployment=deployment, app_id=app_id, container_id=lost.instance_id, host=lost.host or None,
            service=lost.service, diagnostics=lost.exit_message[:2000], restarts=lost.failures_in_window))
        member = self.view.membership.members.get(lost.instance_id)
        if member is not None and member.state is not ev.InstanceState.STOPPED and member.endpoints is not None:
            # Its agent is gone and cannot say so: announce the stop on its behalf, one seq on.
            await self.bus.publish_lifecycle(ev.InstanceStopped(
                deployment=deployment, app_id=app_id, instance_id=lost.instance_id, seq=member.seq + 1,
                endpoints=member.endpoints, models=list(member.models), reason=f"container lost: {lost.exit_message}"[:500]))

    async def _announce(self, now: float) -> None:
        deployment, app_id = self.settings.deployment, self.yarn.app_id
        changed = False
        for container in self.containers:
            before = self._published_states.get(container.skein_id)
            if before == container.state:
                continue
            self._published_states[container.skein_id] = container.state
            changed = True
            common = dict(deployment=deployment, app_id=app_id, container_id=container.instance_id,
                          host=container.host or None, service=container.service)
            if container.state == "running":
                await self.bus.publish_lifecycle(ev.ContainerRunning(**common))
            elif container.state in fleet.FINISHED_STATES and container.skein_id in self.state.released | self.state.handled \
                    and container.state != "failed":
                await self.bus.publish_lifecycle(ev.ContainerCompleted(**common, diagnostics=container.exit_message[:2000]))
        live = {c.instance_id for c in self.containers if c.active}
        self.view.forget_instance_data(live)
        await self._stop_orphans(live)
        if changed or self.view.version != self._snapshot_version or now - self._snapshot_at >= ev.SNAPSHOT_INTERVAL_S:
            await self._snapshot(now)

    async def _snapshot(self, now: float) -> None:
        members = [
            ev.MemberState(instance_id=m.instance_id, state=m.state, seq=m.seq, endpoints=m.endpoints,
                           models=list(m.models))
            for m in self.view.membership.members.values()
            if m.state is not ev.InstanceState.STOPPED and m.instance_id in self._live()
        ]
        self._snapshot_seq += 1
        version = self.view.version
        await self.bus.publish_lifecycle(ev.MembershipSnapshot(
            deployment=self.settings.deployment, app_id=self.yarn.app_id, snapshot_seq=self._snapshot_seq,
            lifecycle_through=self.view.lifecycle_through, desired_count=self.desired, members=members))
        self._snapshot_version = version
        self._snapshot_at = now
        self.stats.snapshots += 1

    @property
    def attempt(self) -> Optional[str]:
        """This application attempt, from the AM container's own id (YARN's CONTAINER_ID)."""
        return attempt_of(os.environ.get("CONTAINER_ID", ""))

    def _live(self) -> set:
        return {c.instance_id for c in self.containers if c.active}

    async def _stop_orphans(self, live: set) -> None:
        """Instances the streams still show alive but no container of ours runs (an earlier
        application of this deployment, a container that ended unseen): announce them stopped."""
        known = {c.instance_id for c in self.containers}
        for member in list(self.view.membership.members.values()):
            if member.state is ev.InstanceState.STOPPED or member.instance_id in live or member.endpoints is None:
                continue
            other_attempt = self.attempt is not None and attempt_of(member.instance_id) not in (None, self.attempt)
            if member.instance_id in known or other_attempt or member.app_id not in (None, self.yarn.app_id):
                await self.bus.publish_lifecycle(ev.InstanceStopped(
                    deployment=self.settings.deployment, app_id=member.app_id or self.yarn.app_id,
                    instance_id=member.instance_id, seq=member.seq + 1, endpoints=member.endpoints,
                    models=list(member.models), reason="no running container holds it"))
                # Applied at once so the next round does not announce it again.
                self.view.membership = apply_member(self.view.membership, replace(
                    member, state=ev.InstanceState.STOPPED, seq=member.seq + 1))
                self.view.version += 1

    # -- read side for the API -------------------------------------------------------
    def running_count(self) -> int:
        return sum(1 for c in self.containers if c.state == "running")

    def container_for(self, instance_id: str) -> Optional[fleet.ObservedContainer]:
        return next((c for c in self.containers if c.instance_id == instance_id), None)
