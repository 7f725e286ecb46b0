"""tarn-am's consuming path without YARN, in a process of its own: the AM's RedisBus
consumers (lifecycle, telemetry, acks; group ``tarn-am``) feeding its FleetView, and once a
second what the control loop reads of it (fresh telemetry of live instances, the fleet's
load). tarn-am itself cannot run outside an AM container: ``serve`` needs skein's
ApplicationClient and the control loop reads skein's containers.

    python am_consumers.py REDIS_URL DEPLOYMENT APP_ID
"""
from __future__ import annotations

import asyncio
import signal
import sys
import time

from tarn_am.bus import RedisBus
from tarn_am.view import FleetView

TELEMETRY_MAX_AGE_S = 3.0


async def main(redis_url: str, deployment: str, app_id: str) -> None:
    bus = RedisBus(redis_url, deployment, app_id)
    view = FleetView(deployment)
    await bus.bootstrap(view)
    for consumer in bus.consumers_for(view):
        await consumer.ensure_groups()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)

    async def control_reads() -> None:
        while not stop.is_set():
            samples = view.fresh_telemetry(time.time(), TELEMETRY_MAX_AGE_S)
            sum(s.load for s in samples) / max(1, len(samples))  # what the control loop computes each second
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    await asyncio.gather(bus.run_consumers(stop), control_reads())
    await bus.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
