"""The deployment's record in Redis (tarn_shared.deployments): published while the deployment
runs, refreshed (Redis may restart empty), and marked removed once a stop has drained it,
so gateway-sync stops serving it and another deployment may claim its places."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, List

from tarn_shared import events as ev

from .bus import RedisBus
from .settings import AmSettings

log = logging.getLogger(__name__)
RECORD_REFRESH_S = 30.0
RETRY_S = 5.0
STEP_S = 1.0  # how soon a stop's end is noticed


def deployment_record(settings: AmSettings, app_id: str, address: str) -> ev.DeploymentRecord:
    return ev.DeploymentRecord(
        deployment=settings.deployment, app_id=app_id, am_address=address, zk_ensemble=settings.zk_ensemble,
        zk_path=settings.zk_path, haproxy_backend=settings.haproxy_backend, ranger_service=settings.ranger_service,
        ranger_app_id=settings.ranger_app_id, ranger_audit=settings.ranger_audit, authz_url=settings.authz_url,
        model_repository=settings.model_repository, min_instances=settings.min_instances,
        max_instances=settings.max_instances, cold_models=cold_models(settings))


def cold_models(settings: AmSettings) -> List[str]:
    """The plan's models that may scale to zero: the gateways hold their requests while at zero."""
    plan = settings.model_plan if settings.placement == "per-model" else None
    return sorted(m for m, t in plan.models.items() if t.min_copies == 0) if plan else []


class RecordKeeper:
    def __init__(self, bus: RedisBus, record: ev.DeploymentRecord) -> None:
        self.bus = bus
        self.record = record
        self.removed = False

    async def remove(self) -> bool:
        """Mark the record removed (once); False when Redis would not take it (tried again later)."""
        if self.removed:
            return True
        try:
            await self.bus.remove_record(self.record)
        except Exception as exc:
            log.warning("could not mark the deployment record removed", extra={"error": repr(exc)})
            return False
        self.removed = True
        log.info("deployment record marked removed", extra={"app_id": self.record.app_id})
        return True

    async def keep(self, stop: asyncio.Event, stopping: Callable[[], bool], drained: Callable[[], bool],
                   clock: Callable[[], float] = time.monotonic) -> None:
        """Publish now and every RECORD_REFRESH_S; once stopping never again, and marked removed when drained."""
        next_at = clock()
        while not stop.is_set():  # this task ends only with tarn-am: runtime.py exits when one ends
            if stopping():
                if drained() and not self.removed and clock() >= next_at and not await self.remove():
                    next_at = clock() + RETRY_S
            elif clock() >= next_at:
                try:
                    await self.bus.put_record(self.record)
                    next_at = clock() + RECORD_REFRESH_S
                except Exception as exc:  # Redis down: try again soon, never die of it
                    log.warning("could not publish the deployment record", extra={"error": repr(exc)})
                    next_at = clock() + RETRY_S
            try:
                await asyncio.wait_for(stop.wait(), STEP_S)
            except asyncio.TimeoutError:
                pass
