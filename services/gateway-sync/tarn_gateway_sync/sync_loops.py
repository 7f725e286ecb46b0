"""The loops that drive the sync, and the leader election that decides whether they write.

Each phase has its own error handling, is timed into a metric and never ends its loop
(Ray Serve's run_control_loop): apply (an event's addresses at once, planned from what
each gateway remembers it applied) and reconcile (everything, read from the gateways: at
start, on election, on a new ZooKeeper session, after an HAProxy restart or reload, after
a failed sync, periodically; at most once per ``reconcile_min_gap_s``). The reconcile reads
each deployment's gateways before it takes the write lock and holds the lock for one
deployment at a time, so an apply never waits behind a whole reconcile. Only the leader
runs them; standbys wait, keeping the ownership of places current (so a new leader keeps
who owns what).
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Dict, Optional, Set

from tarn_shared.errors import UnavailableError

from .deployment_sync import DeploymentSync
from .pending import PendingWork, pause
from .settings import GatewaySyncSettings
from .sync_metrics import Clock, ErrorLog, Metrics
from .leadership import Leadership
from .zookeeper import Ensembles

DRAIN_POLL_S = 1.0
ELECTION_RETRY_S = 2.0


class Election:
    """Joins the election once the election ensemble answers; kazoo's Lock does the rest."""

    def __init__(self, ensembles: Ensembles, settings: GatewaySyncSettings, on_change: Callable[[bool], None],
                 errors: ErrorLog) -> None:
        self.leadership: Optional[Leadership] = None
        self._ensembles = ensembles
        self._settings = settings
        self._on_change = on_change
        self._errors = errors

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None and self.leadership.is_leader

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                ensemble = await self._ensembles.open(self._settings.zk_hosts)
            except UnavailableError as exc:
                self._errors("zookeeper", exc)
                await pause(stop, ELECTION_RETRY_S)
                continue
            self.leadership = Leadership(ensemble, self._settings.election_path, self._settings.replica_id,
                                         self._on_change)
            self.leadership.start()
            return

    async def stop(self) -> None:
        if self.leadership is not None:
            await asyncio.to_thread(self.leadership.stop)


class ControlLoop:
    def __init__(self, sync: DeploymentSync, work: PendingWork, is_leader: Callable[[], bool], metrics: Metrics,
                 errors: ErrorLog, *, reconcile_interval_s: float, reconcile_min_gap_s: float = 1.0,
                 clock: Clock = Clock()) -> None:
        self.last_reconcile: Optional[dict] = None
        self._sync = sync
        self._work = work
        self._is_leader = is_leader
        self._metrics = metrics
        self._errors = errors
        self._reconcile_interval_s = reconcile_interval_s
        self._reconcile_min_gap_s = min(reconcile_min_gap_s, reconcile_interval_s)  # never longer than the period
        self._clock = clock
        self._write_lock = asyncio.Lock()  # one phase writes at a time

    def forget_applied(self) -> None:
        """The gateways may have changed behind this replica (another led, HAProxy restarted)."""
        self._sync.forget_applied()

    async def run_apply(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.apply(await self._work.next_changes(DRAIN_POLL_S))

    async def run_reconcile(self, stop: asyncio.Event) -> None:
        started = self._clock.monotonic()
        while not stop.is_set():
            since = self._clock.monotonic() - started
            triggers = await self._work.next_reconcile(max(0.0, self._reconcile_interval_s - since))
            started = self._clock.monotonic()
            await self.reconcile(triggers)
            # Rate-limited: what asks for another meanwhile is kept and served after the gap.
            await pause(stop, max(0.0, self._reconcile_min_gap_s - (self._clock.monotonic() - started)))

    async def apply(self, changed: Dict[str, Set[str]]) -> None:
        """Sync just the changed addresses of each deployment."""
        if not self._is_leader():
            self._work.forget_changes()
            return
        started = self._clock.monotonic()
        async with self._write_lock:
            await self._sync.refresh_claims(leader=True)  # a deployment new since the last reconcile writes only what it owns
            served = self._sync.deployments()
            for name, scope in changed.items():
                if name in served and scope and not await self._guarded_sync(name, scope):
                    self._work.retry_soon()
        self._metrics.phase_seconds.labels("apply").observe(self._clock.monotonic() - started)

    async def reconcile(self, triggers: Set[str]) -> None:
        """Sync every deployment entirely and clean the places nobody owns any more;
        ``last_reconcile`` says how it went."""
        if not self._is_leader():
            await self._sync.refresh_claims(leader=False)
            return
        started = self._clock.monotonic()
        ok = True
        async with self._write_lock:
            await self._sync.refresh_claims(leader=True)
            ok = await self._guarded(self._sync.clean_released(), "cleaning")
        for name in self._sync.deployments():
            await self._guarded(self._observed(name), name)  # the reads, outside the lock
            async with self._write_lock:
                ok = await self._guarded_sync(name, None) and ok
        duration_s = self._clock.monotonic() - started
        self._metrics.phase_seconds.labels("reconcile").observe(duration_s)
        for trigger in triggers:
            self._metrics.reconciles.labels(trigger).inc()
        self.last_reconcile = {"at": self._clock.wall(), "triggers": sorted(triggers), "ok": ok,
                               "duration_s": round(duration_s, 4), "deployments": len(self._sync.deployments())}
        if not ok:
            self._work.retry_soon()

    async def _observed(self, name: str) -> bool:
        await self._sync.observe(name)
        return True

    async def _guarded_sync(self, name: str, scope: Optional[Set[str]]) -> bool:
        return await self._guarded(self._sync.sync(name, scope), name)

    async def _guarded(self, step: Awaitable[bool], deployment: str) -> bool:
        try:
            return await step
        except Exception as exc:  # a bug must not end the loop
            self._errors("internal", exc, deployment=deployment)
            return False
