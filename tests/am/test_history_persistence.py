"""The dashboard's history kept in the real Redis (history_keeper.py through bus.py): stored
while tarn-am runs, read back by the next one, and a Redis that does not answer never stops
the points being taken."""
from __future__ import annotations

import asyncio
import time

import pytest

from tarn_am.bus import RedisBus
from tarn_am.history import InstancePoint, Point
from tarn_am.history_keeper import empty_history, keep_history, restore
from tarn_am.settings import AmSettings
from tarn_am.view import FleetView, TargetChange
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def settings_for(deployment: str, redis_url: str) -> AmSettings:
    return AmSettings(deployment=deployment, slots=["s1=nm1"], redis_url=redis_url, history_persist_s=1)


async def run_keeper(settings: AmSettings, seconds: float, bus: RedisBus):
    history = empty_history(settings)
    stop = asyncio.Event()
    taken = []

    def take(now: float) -> None:
        taken.append(now)
        history.add(Point(now, 2, 2, 1, {"c1": InstancePoint(0.5, 1.0, float(len(taken)))}, {"identity": 3.0}))
        history.mark([TargetChange(now - 0.01, "api", 1, 2, "asked")] if len(taken) == 1 else [])

    task = asyncio.create_task(keep_history(take, history, bus, settings, stop, interval_s=0.05))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)
    return history, taken


def test_a_restarted_tarn_am_reads_back_the_stored_history(redis_url, deployment):
    settings = settings_for(deployment, redis_url)

    async def scenario():
        bus = RedisBus(redis_url, deployment, "application_1_0001")
        try:
            kept, taken = await run_keeper(settings, 1.5, bus)
            ttl = await bus.client.ttl(f"tarn:{deployment}:history")
            view = FleetView(deployment)
            back = await restore(bus, settings, view, time.time())
            return kept, taken, ttl, view, back
        finally:
            await bus.close()

    kept, taken, ttl, view, back = asyncio.run(scenario())
    assert len(taken) >= 10
    assert list(back.points) == list(kept.points) and back.columns() == kept.columns()
    assert 0 < ttl <= 2 * settings.history_window_s + settings.history_persist_s
    # The decisions list starts from the stored decisions (the dashboard's table).
    assert [(d.source, d.previous, d.target) for d in view.decisions] == [("api", 1, 2)]


def test_no_stored_history_starts_empty_charts(redis_url, deployment):
    async def scenario():
        bus = RedisBus(redis_url, deployment, "application_1_0001")
        try:
            return await restore(bus, settings_for(deployment, redis_url), FleetView(deployment), time.time())
        finally:
            await bus.close()

    history = asyncio.run(scenario())
    assert len(history.points) == 0 and history.capacity == 1800


def test_a_redis_that_does_not_answer_never_stops_the_points():
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = settings_for("nowhere", url)

    async def scenario():
        bus = RedisBus(url, "nowhere", "application_1_0001")
        try:
            started = time.monotonic()
            restored = await restore(bus, settings, FleetView("nowhere"), time.time())
            restore_s = time.monotonic() - started
            history, taken = await run_keeper(settings, 2.5, bus)
            return restored, restore_s, history, taken
        finally:
            await bus.close()

    restored, restore_s, history, taken = asyncio.run(scenario())
    assert len(restored.points) == 0 and restore_s < 6
    # Two stores failed meanwhile (every second); the points kept coming every 50 ms.
    assert len(taken) >= 20 and len(history.points) == len(taken)
