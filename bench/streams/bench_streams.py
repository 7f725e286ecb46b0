"""Publish-and-consume through tarn_shared.streams against raw redis-py XADD/XREADGROUP/XACK,
in the same run, against a real Redis.

Throughput: N events published flat out by P concurrent producers (as many agents
publish at once) while one consumer handles them; events/s from the first publish to
the last event handled.
Latency: events published at a fixed rate (well below saturation); per event, the time
from just before XADD to the consumer's handler; p50 and p99.
The raw baseline does the same round trips with no decoding, typing or bookkeeping.
Targets (issue 2): >= 10,000 events/s end to end; p99 <= 1.5x the raw p99.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import redis.asyncio as aioredis

from tarn_shared import events as ev
from tarn_shared.streams import ConsumerConfig, StreamConsumer, StreamPublisher, connect


def sample(deployment: str) -> ev.TelemetrySample:
    return ev.TelemetrySample(deployment=deployment, app_id="application_1_0001", instance_id="container_1",
                              interval_s=2.0, load=0.4,
                              models=[ev.ModelSample(name="identity", request_rate_per_s=10.0)])


async def run_tarn(url: str, n: int, rate: float | None, producers: int) -> tuple[float, list[float]]:
    deployment = f"bench{uuid.uuid4().hex[:8]}"
    stream = ev.telemetry_stream(deployment)
    producer, consumer_client = connect(url), connect(url)
    publisher = StreamPublisher(producer)
    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    done = asyncio.Event()

    async def handle(_stream, _entry_id, event):
        latencies.append(time.perf_counter() - sent_at[event.event_id])
        if len(latencies) == n:
            done.set()

    consumer = StreamConsumer(consumer_client, [stream], ConsumerConfig(group="bench", consumer="c1", block_ms=100,
                                                                          count=500), handle)
    await consumer.ensure_groups()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    template = sample(deployment)

    async def send():
        event = template.model_copy(update={"event_id": uuid.uuid4().hex})
        sent_at[event.event_id] = time.perf_counter()
        await publisher.publish(stream, event)

    started = time.perf_counter()
    await produce(n, rate, producers, send)
    await asyncio.wait_for(done.wait(), timeout=300)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await producer.delete(stream)
    await producer.aclose()
    await consumer_client.aclose()
    return n / elapsed, latencies


async def run_raw(url: str, n: int, rate: float | None, producers: int) -> tuple[float, list[float]]:
    stream = f"bench-raw:{uuid.uuid4().hex[:8]}"
    producer, consumer_client = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
    await producer.xgroup_create(stream, "bench", id="0", mkstream=True)
    payload = ev.encode(sample("raw"))["event"]
    latencies: list[float] = []
    sent_at: dict[bytes, float] = {}

    async def consume():
        while len(latencies) < n:
            reply = await consumer_client.xreadgroup("bench", "c1", {stream: ">"}, count=500, block=100)
            for _name, entries in reply or []:
                for entry_id, fields in entries:
                    latencies.append(time.perf_counter() - sent_at[fields[b"k"]])
                await consumer_client.xack(stream, "bench", *[e for e, _ in entries])

    task = asyncio.create_task(consume())

    async def send():
        key = uuid.uuid4().hex.encode()
        sent_at[key] = time.perf_counter()
        await producer.xadd(stream, {"event": payload, "k": key})

    started = time.perf_counter()
    await produce(n, rate, producers, send)
    await asyncio.wait_for(task, timeout=300)
    elapsed = time.perf_counter() - started
    await producer.delete(stream)
    await producer.aclose()
    await consumer_client.aclose()
    return n / elapsed, latencies


async def produce(n: int, rate: float | None, producers: int, send) -> None:
    """Call ``send()`` n times: paced by one producer at ``rate``, else from P concurrent ones."""
    started = time.perf_counter()
    if rate:
        for i in range(n):
            await send()
            await _pace(started, i + 1, rate)
        return

    async def worker(count: int) -> None:
        for _ in range(count):
            await send()

    await asyncio.gather(*(worker(n // producers + (1 if k < n % producers else 0)) for k in range(producers)))


async def _pace(started: float, sent: int, rate: float) -> None:
    ahead = started + sent / rate - time.perf_counter()
    if ahead > 0:
        await asyncio.sleep(ahead)


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 1 else values[0]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latency-events", type=int, default=4_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="events/s for the latency run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--producers", type=int, default=8)
    args = parser.parse_args()

    results = {"tarn": {"tput": [], "lat": []}, "raw": {"tput": [], "lat": []}}
    for _ in range(args.rounds):  # interleaved so machine noise hits both alike
        for name, fn in (("raw", run_raw), ("tarn", run_tarn)):
            tput, _ = await fn(args.redis_url, args.events, None, args.producers)
            _, lat = await fn(args.redis_url, args.latency_events, args.rate, 1)
            results[name]["tput"].append(tput)
            results[name]["lat"].extend(lat)

    summary = {}
    for name, r in results.items():
        summary[name] = {"events_per_s": statistics.median(r["tput"]),
                         "p50_ms": p(r["lat"], 0.5) * 1e3, "p99_ms": p(r["lat"], 0.99) * 1e3}
    ratio_tput = summary["tarn"]["events_per_s"] / summary["raw"]["events_per_s"]
    ratio_p99 = summary["tarn"]["p99_ms"] / summary["raw"]["p99_ms"]
    for name in ("raw", "tarn"):
        s = summary[name]
        print(f"{name:5s} throughput {s['events_per_s']:9.0f} events/s   latency p50 {s['p50_ms']:6.3f} ms  "
              f"p99 {s['p99_ms']:6.3f} ms")
    print(f"ratio tarn/raw: throughput {ratio_tput:.2f}x   p99 latency {ratio_p99:.2f}x")
    tput_ok = summary["tarn"]["events_per_s"] >= 10_000
    lat_ok = ratio_p99 <= 1.5
    print(f"target >= 10,000 events/s: {'met' if tput_ok else 'MISSED'}; "
          f"target p99 <= 1.5x raw: {'met' if lat_ok else 'MISSED'}")
    print(json.dumps({"summary": summary, "throughput_ratio": ratio_tput, "p99_ratio": ratio_p99}))


if __name__ == "__main__":
    asyncio.run(main())
