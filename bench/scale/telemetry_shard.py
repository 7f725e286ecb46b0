"""One shard of bench/scale's simulated node-agents, in a process of its own: a
TelemetrySample per instance each second (spread over ten ticks; the agent's default is
every 2 s) and an InstanceHeartbeat every HEARTBEAT_INTERVAL_S (5 s, the agent's period),
for the slots the main simulator hands it. One Python process
cannot publish 10,000 agents' telemetry on this machine, so bench_scale.py starts several.

    python telemetry_shard.py REDIS_URL DEPLOYMENT APP_ID

stdin, one command a line: ``slot PORT SEQ`` (that slot runs the instance on PORT),
``idle SLOT`` (its instance is draining: no more telemetry), ``go`` (start the ticks),
``stop`` (print {"published": N, "late_ticks": M} and exit).
"""
from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Dict, Tuple

from tarn_shared import events as ev
from tarn_shared.defaults import HEARTBEAT_INTERVAL_S
from tarn_shared.streams import StreamPublisher, connect

TICKS_PER_S = 10
HEARTBEAT_EVERY = round(HEARTBEAT_INTERVAL_S)  # seconds


def instance_id(port: int) -> str:
    return f"container_e01_1700000000000_0001_01_{port:06d}"


def sample(deployment: str, app_id: str, port: int) -> ev.TelemetrySample:
    return ev.TelemetrySample(
        deployment=deployment, app_id=app_id, instance_id=instance_id(port), interval_s=1.0, load=random.random(),
        models=[ev.ModelSample(name="identity", version="1", request_rate_per_s=random.random() * 50,
                               queue_time_per_request_us=random.random() * 1000, pending_requests=random.random())],
        gpu_error="NVMLError_LibraryNotFound: NVML Shared Library Not Found")


def heartbeat(deployment: str, app_id: str, port: int, seq: int) -> ev.InstanceHeartbeat:
    return ev.InstanceHeartbeat(deployment=deployment, app_id=app_id, instance_id=instance_id(port), seq=seq,
                                state=ev.InstanceState.READY, endpoints=ev.Endpoints(host="127.0.0.1", http_port=port))


async def main(redis_url: str, deployment: str, app_id: str) -> None:
    client = connect(redis_url)
    publisher = StreamPublisher(client)
    stream = ev.telemetry_stream(deployment)
    slots: Dict[int, Tuple[int, int]] = {}  # slot -> (port, seq)
    go, stop = asyncio.Event(), asyncio.Event()
    counts = {"published": 0, "late_ticks": 0}

    async def commands() -> None:
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "slot":
                slots[int(line[1])] = (int(line[2]), int(line[3]))
            elif line[0] == "idle":
                slots.pop(int(line[1]), None)
            elif line[0] == "go":
                go.set()
            elif line[0] == "stop":
                break
        stop.set()

    async def ticks() -> None:
        await go.wait()
        t0, tick = time.monotonic(), 0
        while not stop.is_set():
            delay = t0 + tick / TICKS_PER_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.1:
                counts["late_ticks"] += 1
            batch = []
            for slot, (port, seq) in list(slots.items()):
                if slot % TICKS_PER_S == tick % TICKS_PER_S:
                    batch.append(sample(deployment, app_id, port))
                    if (slot // TICKS_PER_S) % HEARTBEAT_EVERY == (tick // TICKS_PER_S) % HEARTBEAT_EVERY:
                        batch.append(heartbeat(deployment, app_id, port, seq))
            for i in range(0, len(batch), 500):
                await publisher.publish_many(stream, batch[i:i + 500], maxlen=ev.TELEMETRY_MAXLEN)
            counts["published"] += len(batch)
            tick += 1

    ticking = asyncio.create_task(ticks())
    await commands()
    ticking.cancel()
    await asyncio.gather(ticking, return_exceptions=True)
    print(json.dumps(counts), flush=True)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
