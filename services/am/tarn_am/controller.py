"""tarn-am's control loop: observe (skein), decide (the autoscaling policy, then the reconcile
decision), act (through the yarn and redis adapters), announce. The decisions are pure
(autoscale.py, reconcile.py, announcements.py); this module only acts on them. Each phase
has its own error handling, is timed into a metric, and can never end the loop.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional

from tarn_shared import events as ev

from . import fleet_memory, reconcile
from . import target as tg
from .actions import carry_out
from .announcements import Announcer, attempt_of
from .autoscale import Autoscaler
from .bus import RedisBus
from .containers import Action, ContainerLost, ObservedContainer, Slot
from .fleet_load import observation
from .model_phase import Policy, placer_for
from .settings import AmSettings
from .slot_views import SlotInputs, SlotView, slot_views
from .target_store import restored_controls, store_controls
from .view import FleetView, TargetChange
from .yarn import KV_DESIRED, YarnAdapter

log = logging.getLogger(__name__)


@dataclass
class LoopStats:
    rounds: int = 0
    phase_seconds: Dict[str, float] = field(default_factory=dict)
    phase_errors: Counter = field(default_factory=Counter)
    last_round_at: Optional[float] = None
    snapshots: int = 0
    deltas: int = 0
    phase_ok_at: Dict[str, float] = field(default_factory=dict)  # each phase's last good pass (/healthz)
    phase_error: Dict[str, str] = field(default_factory=dict)  # each phase's last failure, until it passes


TargetError = tg.Refusal  # an operator's request the target's rules refuse (target.py)


class Controller:
    def __init__(self, settings: AmSettings, yarn: YarnAdapter, bus: RedisBus, view: FleetView,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.yarn = yarn
        self.bus = bus
        self.view = view
        self.clock = clock
        initial = settings.initial_instances if settings.initial_instances is not None else settings.min_instances
        self.target = tg.initial(initial, settings.autoscale, clock())
        self.state = reconcile.FleetState()
        self.decision: Optional[reconcile.Decision] = None
        self.stats = LoopStats()
        self.policy = Policy(Autoscaler(settings.autoscale_config()), placer_for(settings, bus, yarn))
        # YARN's CONTAINER_ID is the AM container's own id: it names this application attempt.
        self.announcer = Announcer(settings.deployment, yarn.app_id, attempt_of(os.environ.get("CONTAINER_ID", "")))
        self._wake = asyncio.Event()

    # -- start-up --------------------------------------------------------------------
    async def take_over(self) -> None:
        """Adopt whatever skein already runs (a restarted tarn-am) without touching it."""
        containers = await asyncio.to_thread(self.yarn.containers)
        self.view.containers = containers
        self.state = fleet_memory.resumed(await self._from_redis(self.bus.get_fleet_memory), containers)
        self.announcer = self.announcer.taken_over(containers)
        stored = await asyncio.to_thread(self.yarn.kv_get, KV_DESIRED)
        if stored is not None and stored.isdigit():
            await self._change_target(int(stored), "takeover", "target kept from the previous tarn-am",
                                      previous=int(stored))
        else:
            remembered = await self._from_redis(self.bus.get_desired)
            if remembered is not None:
                count, reason = min(remembered, self.settings.max_instances), \
                    "target kept from the previous application attempt"
            else:
                count, reason = self.desired, "initial instance count"
            await self._change_target(count, "start", reason, previous=0)
        restored = await restored_controls(self.yarn, self.bus, self.target)
        if restored is not None:
            self.target = restored
        else:
            await store_controls(self.yarn, self.bus, self.target)
        log.info("took over", extra={"app_id": self.yarn.app_id, "desired": self.desired,
                                     "active_containers": sum(1 for c in containers if c.active)})

    @staticmethod
    async def _from_redis(read):
        """What the last tarn-am left in Redis (a new attempt's key-value store is empty);
        None when Redis cannot say: then tarn-am starts as a first one would."""
        try:
            return await read()
        except Exception:
            return None

    # -- the target ------------------------------------------------------------------
    @property
    def desired(self) -> int:
        return self.target.desired

    async def set_target(self, count: int, source: str, reason: str) -> int:
        """An operator's count: inside the bounds, and the policy measures afresh from it."""
        tg.manual_count(self.target, count, self.settings.min_instances, self.settings.max_instances)
        await self._change_target(count, source, reason)
        self.policy.autoscaler = tg.fresh_windows(self.policy.autoscaler)
        return count

    async def set_autoscale(self, enabled: bool, reason: str) -> tg.Target:
        """`tarn autoscale on|off`: stored before it is answered, so a restart keeps it."""
        changed = tg.resumed(self.target) if enabled else tg.paused(self.target, reason, self.clock())
        if changed != self.target:
            await self._change_controls(changed, "resumed" if enabled else "paused", reason)
            self.policy.autoscaler = tg.fresh_windows(self.policy.autoscaler)
        return self.target

    async def stop(self, reason: str) -> None:
        """`tarn stop`: pause the policy and drain every instance (the count goes to 0)."""
        previous = self.desired
        if not self.target.stopping:
            await self._change_controls(tg.stopping(self.target, reason, self.clock()), "stopping", reason)
        if previous != 0:  # stores and records the 0 the stop has already shown
            await self._change_target(0, "stop", reason, previous=previous)

    async def _change_controls(self, changed: tg.Target, what: str, reason: str) -> None:
        await store_controls(self.yarn, self.bus, changed)
        self.target = changed
        self.view.policy_reason = tg.pause_note(changed, None)
        log.info("autoscaling " + what, extra={"reason": reason})
        self._wake.set()

    async def _change_target(self, count: int, source: str, reason: str, previous: Optional[int] = None) -> None:
        """The one way the target moves: store it (skein's store, then Redis), set it, record it."""
        previous = self.desired if previous is None else previous
        await asyncio.to_thread(self.yarn.kv_put, KV_DESIRED, str(count))
        self.target = replace(self.target, desired=count)
        try:
            await self.bus.put_desired(count)
        except Exception as exc:  # Redis down: skein's store still has it
            log.warning("could not remember the target in Redis", extra={"error": repr(exc)})
        self.view.decisions.append(TargetChange(self.clock(), source, previous, count, reason))
        log.info("target", extra={"source": source, "previous": previous, "target": count, "reason": reason})
        self._wake.set()

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
        await self._phase("remember", lambda: self.bus.put_fleet_memory(fleet_memory.encode(self.state)))
        if actions:
            await self._phase("act", lambda: self._act(actions))
        await self._phase("announce", lambda: self._announce(now))
        self.stats.last_round_at = now

    async def _phase(self, name: str, body):
        started = time.perf_counter()
        try:
            result = body()
            if asyncio.iscoroutine(result):
                result = await result
            self.stats.phase_ok_at[name] = self.clock()
            self.stats.phase_error.pop(name, None)
            return result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one phase failing must never end the loop
            self.stats.phase_errors[name] += 1
            self.stats.phase_error[name] = str(exc) or repr(exc)
            log.warning("control loop phase failed", extra={"phase": name, "error": repr(exc)})
            return None
        finally:
            self.stats.phase_seconds[name] = time.perf_counter() - started

    async def _observe(self) -> None:
        self.view.containers = await asyncio.to_thread(self.yarn.containers)

    async def _autoscale(self, now: float) -> None:
        if self.target.stopping:
            return
        if self.policy.models is not None:
            count, reason = await self.policy.models.step(self.view, self.draining(), self.desired, now)
            self.view.policy_reason = reason if self.target.policy_moves else tg.pause_note(self.target, reason)
            if self.target.policy_moves and count != self.desired:
                await self._change_target(count, "placement", reason)
            return
        observed = observation(self.view.membership.members, self.view.telemetry, self.draining())
        decision, stepped = self.policy.autoscaler.step(self.desired, observed, now)
        if not self.target.policy_moves:
            # Paused: say what the policy would do, but keep its windows where they were.
            if decision is not None:
                self.view.policy_reason = tg.pause_note(self.target, decision.reason)
            return
        self.policy.autoscaler = stepped
        if decision is None:
            return
        self.view.policy_reason = decision.reason
        if decision.desired_count != self.desired:
            await self._change_target(decision.desired_count, "autoscale", decision.reason)

    def _decide(self, now: float) -> List[Action]:
        observed = reconcile.Observation(
            containers=self.view.containers,
            members=self.view.membership.members,
            last_heartbeat=dict(self.view.heartbeats),
            acked_commands=frozenset(self.view.acked),
            bus=self.bus.health(now),
            release_first=self.policy.models.release_first() if self.policy.models else frozenset(),
        )
        self.decision, self.state = reconcile.decide(self.desired, self.slots, observed, now, self.state,
                                                     self.settings.reconcile_timings())
        return list(self.decision.actions)

    async def _act(self, actions: List[Action]) -> None:
        for action in actions:
            try:
                await carry_out(action, self.settings.deployment, self.yarn, self.bus, self._lost_events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.phase_errors["act"] += 1
                log.warning("action failed; the next round decides again",
                            extra={"action": type(action).__name__, "error": repr(exc), "app_id": self.yarn.app_id})

    def _lost_events(self, lost: ContainerLost):
        return self.announcer.lost(lost, self.view.membership.members.get(lost.instance_id))

    async def _announce(self, now: float) -> None:
        accounted = self.state.released | self.state.handled
        changed = self.announcer.changed(self.view.containers)
        for container in changed:
            self.announcer = self.announcer.saw(container)
            event = self.announcer.container_event(container, accounted)
            if event is not None:
                await self.bus.publish_lifecycle(event)
        self.view.forget_instance_data(self.view.live_instances())
        for member, stop in self.announcer.orphans(self.view.containers, self.view.membership.members):
            await self.bus.publish_lifecycle(stop)
            self.view.mark_stopped(member)
        # Redis may have come back empty: the first snapshot after the bus recovered re-seeds it.
        since = self.bus.health(now).since
        recovered = since is not None and self.announcer.snapshot_at < since
        if self.announcer.snapshot_due(bool(changed) or recovered, self.view.version, now):
            await self._publish_membership(now, full=recovered)
        await self.bus.delete_command_streams([c.instance_id for c in changed if not c.active])

    async def _publish_membership(self, now: float, full: bool) -> None:
        version, live = self.view.version, self.view.live_instances()
        update, self.announcer = self.announcer.update(
            self.view.membership.members, live, self.view.lifecycle_through, self.desired, now, full)
        if isinstance(update, ev.MembershipSnapshot):
            await self.bus.publish_snapshot(update, live)
            self.stats.snapshots += 1
        elif update is not None:  # a delta: the stream is trimmed at full snapshots only
            await self.bus.publish_lifecycle(update)
            self.stats.deltas += 1
        self.announcer = self.announcer.sent(update, version, now)

    # -- read side for the API and /metrics --------------------------------------------
    @property
    def slots(self) -> List[Slot]:
        return self.settings.slot_list()

    def draining(self) -> frozenset:
        return frozenset(d.instance_id for d in self.state.drains.values())

    def running_count(self) -> int:
        return self.view.running_count()

    def container_for(self, instance_id: str) -> Optional[ObservedContainer]:
        return self.view.container_for(instance_id)

    def slot_views(self, now: float) -> List[SlotView]:
        decision = self.decision
        inputs = SlotInputs(self.slots, self.view.containers, self.view.membership.members,
                            decision.crash_looping if decision else (), bool(decision and decision.blocked),
                            self.state.next_start_at, {s: u.reason for s, u in self.state.unfilled.items()})
        return slot_views(inputs, self.view.failures, now)
