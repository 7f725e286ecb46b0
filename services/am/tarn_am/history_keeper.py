"""tarn-am keeps its history (history.py): a point per telemetry interval read from the
controller's view, the target changes as markers, and all of it in Redis every
``history_persist_s`` (and on the way out), read back at start so a restarted tarn-am
keeps its charts and its decisions list. A Redis outage costs at most the unsaved
points; it never stops the control loop or this one."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Callable, Optional

from .bus import RedisBus
from .controller import Controller
from .history import History, capacity_for, point_of
from .settings import AmSettings
from .view import FleetView, TargetChange

log = logging.getLogger(__name__)
# A sample older than this many intervals says nothing about the point being taken.
STALE_INTERVALS = 2.5
REDIS_TIMEOUT_S = 5.0


def empty_history(settings: AmSettings) -> History:
    # A point per telemetry interval (tarn submit --telemetry-interval), as the agents sample.
    interval_s = settings.telemetry_interval_s
    return History(capacity_for(settings.history_window_s, interval_s), interval_s)


async def restore(bus: RedisBus, settings: AmSettings, view: FleetView, now: float) -> History:
    """The stored history, or an empty one when there is none or it cannot be read.
    Call it before the controller takes over: the view's decisions start from the stored ones."""
    history = empty_history(settings)
    try:
        text = await asyncio.wait_for(bus.get_history(), REDIS_TIMEOUT_S)
    except Exception as exc:  # Redis down: start with empty charts
        log.warning("could not read the stored history", extra={"error": repr(exc)})
        return history
    if text is None:
        return history
    try:
        history = History.load(text, history.capacity, settings.telemetry_interval_s, now)
    except ValueError as exc:
        log.warning("ignoring the stored history", extra={"error": str(exc)})
        return history
    view.decisions.extend(TargetChange(**asdict(m)) for m in history.markers)
    log.info("history restored", extra={"points": len(history.points), "decisions": len(history.markers)})
    return history


def take_point(controller: Controller, history: History, now: float) -> None:
    view = controller.view
    history.add(point_of(now, controller.desired, controller.running_count(), len(view.membership.routable()),
                         view.fresh_telemetry(now, STALE_INTERVALS * controller.settings.telemetry_interval_s)))
    history.mark(view.decisions)


async def save(bus: RedisBus, history: History, ttl_s: int) -> bool:
    try:
        await asyncio.wait_for(bus.put_history(history.dump(), ttl_s), REDIS_TIMEOUT_S)
        return True
    except Exception as exc:  # Redis down: the next save has it all again
        log.warning("could not store the history", extra={"error": repr(exc)})
        return False


async def keep_history(take: Callable[[float], None], history: History, bus: RedisBus, settings: AmSettings,
                       stop: asyncio.Event, clock: Callable[[], float] = time.time,
                       interval_s: Optional[float] = None) -> None:
    """``take(now)`` adds a point (take_point, bound to the controller) once per ``interval_s``."""
    # Kept a while past the window: older points are dropped when read back anyway.
    ttl_s = int(2 * history.window_s + settings.history_persist_s)
    interval_s = interval_s or settings.telemetry_interval_s
    saved_at = clock()
    while not stop.is_set():
        now = clock()
        try:
            take(now)
        except Exception as exc:  # a bad reading costs one point, never the loop
            log.warning("could not take a history point", extra={"error": repr(exc)})
        if now - saved_at >= settings.history_persist_s:
            await save(bus, history, ttl_s)
            saved_at = now
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except asyncio.TimeoutError:
            pass
    await save(bus, history, ttl_s)
