"""Publish-and-consume through tarn_shared.streams against raw redis-py XADD/XREADGROUP/XACK,
in the same run, against a real Redis.

Producers run in their own process (as node-agents do), the consumer in this one.
Throughput: N events published flat out by P concurrent producer tasks while one
consumer handles them; events/s from the first publish to the last event handled.
Latency: events published at a fixed rate well below saturation; per event, from the
producer's clock just before XADD to the consumer's handler (same host, same clock).
The raw baseline is what a hand-written redis-py client does for the same event: the same
round trips (XADD; XREADGROUP, XACK), the event serialized to JSON when it is sent (its ``ts``
taken first, as tarn's is) and parsed when it arrives, with no typing, validation or
bookkeeping. Until issue 18 it sent one payload encoded once with a timestamp field beside
it and never read the payload, so it left out work every consumer must do; that "opaque"
baseline is still measured (latency only) and its ratio printed, for reference.
Targets (issue 2): >= 10,000 events/s end to end; p99 latency <= 1.5x the raw p99.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import time
import uuid

import redis.asyncio as aioredis

from tarn_shared import events as ev
from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.streams import StreamPublisher, connect


def sample(deployment: str) -> ev.TelemetrySample:
    return ev.TelemetrySample(deployment=deployment, app_id="application_1_0001", instance_id="container_1",
                              interval_s=2.0, load=0.4,
                              models=[ev.ModelSample(name="identity", request_rate_per_s=10.0)])


# ------------------------------------------------------------------ producers (child process)

async def _produce(kind: str, url: str, stream: str, n: int, rate: float, producers: int) -> None:
    client = connect(url) if kind == "tarn" else aioredis.Redis.from_url(url)
    publisher = StreamPublisher(client)
    template = sample(stream.split(":")[1])
    payload = ev.encode(template)[ev.ENTRY_FIELD]
    as_json = template.model_dump(mode="json")

    async def send() -> None:
        if kind == "tarn":
            await publisher.publish(stream, template.model_copy(update={"ts": time.time()}))
        elif kind == "raw":
            await client.xadd(stream, {"event": json.dumps({**as_json, "ts": time.time()})})
        else:  # opaque
            await client.xadd(stream, {"event": payload, "t": repr(time.time())})

    started = time.perf_counter()
    if rate:
        for i in range(n):
            await send()
            ahead = started + (i + 1) / rate - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
    else:
        async def worker(count: int) -> None:
            for _ in range(count):
                await send()
        await asyncio.gather(*(worker(n // producers + (k < n % producers)) for k in range(producers)))
    await client.aclose()


def producer_process(*args) -> None:
    asyncio.run(_produce(*args))


# ------------------------------------------------------------------ consumers (this process)

async def consume(kind: str, url: str, n: int, rate: float, producers: int) -> tuple[float, list[float]]:
    stream = ev.telemetry_stream(f"bench{uuid.uuid4().hex[:8]}")
    client = connect(url) if kind == "tarn" else aioredis.Redis.from_url(url)
    await client.xgroup_create(stream, "bench", id="0", mkstream=True)
    latencies: list[float] = []
    seen_at: list[float] = []  # first and last handling times
    done = asyncio.Event()

    def record(sent: float) -> None:
        now = time.time()
        if not seen_at:
            seen_at.append(now)
        latencies.append(now - sent)
        if len(latencies) == n:
            seen_at.append(now)
            done.set()

    stop = asyncio.Event()
    if kind == "tarn":
        async def handle(_stream, _entry_id, event):
            record(event.ts)
        consumer = StreamConsumer(client, [stream], ConsumerConfig(group="bench", consumer="c1", block_ms=100,
                                                                     count=500), handle)
        task = asyncio.create_task(consumer.run(stop))
    else:
        async def raw_loop():
            while not stop.is_set():
                reply = await client.xreadgroup("bench", "c1", {stream: ">"}, count=500, block=100)
                for _name, entries in reply or []:
                    for _entry_id, fields in entries:
                        record(json.loads(fields[b"event"])["ts"] if kind == "raw" else float(fields[b"t"]))
                    await client.xack(stream, "bench", *[e for e, _ in entries])
        task = asyncio.create_task(raw_loop())

    proc = mp.get_context("spawn").Process(target=producer_process, args=(kind, url, stream, n, rate, producers))
    proc.start()
    await asyncio.wait_for(done.wait(), timeout=600)
    stop.set()
    await task
    proc.join(timeout=30)
    await client.delete(stream)
    await client.aclose()
    # Timed from the first event handled: the producer process's start-up is not the client's cost.
    return (n - 1) / (seen_at[1] - seen_at[0]), latencies


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--latency-events", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="events/s for the latency runs")
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    results: dict = {k: {"tput": [], "lat": []} for k in ("opaque", "raw", "tarn")}
    for _ in range(args.rounds):  # interleaved, so machine noise hits all alike
        for kind in ("opaque", "raw", "tarn"):
            if kind != "opaque":
                tput, _ = await consume(kind, args.redis_url, args.events, 0, args.producers)
                results[kind]["tput"].append(tput)
            _, lat = await consume(kind, args.redis_url, args.latency_events, args.rate, 1)
            results[kind]["lat"].extend(lat)

    summary = {k: {"events_per_s": statistics.median(r["tput"]) if r["tput"] else None,
                   "p50_ms": quantile(r["lat"], 0.5) * 1e3, "p99_ms": quantile(r["lat"], 0.99) * 1e3}
               for k, r in results.items()}
    tput_ratio = summary["tarn"]["events_per_s"] / summary["raw"]["events_per_s"]
    p99_ratio = summary["tarn"]["p99_ms"] / summary["raw"]["p99_ms"]
    opaque_ratio = summary["tarn"]["p99_ms"] / summary["opaque"]["p99_ms"]
    for kind in ("opaque", "raw", "tarn"):
        s = summary[kind]
        rate = f"{s['events_per_s']:8.0f} events/s" if s["events_per_s"] else "   (latency only)"
        print(f"{kind:6s} throughput {rate}   latency p50 {s['p50_ms']:6.3f} ms   p99 {s['p99_ms']:6.3f} ms")
    print(f"tarn/raw: throughput {tput_ratio:.2f}x, p99 latency {p99_ratio:.2f}x "
          f"(against the opaque baseline {opaque_ratio:.2f}x)")
    print(f"target >= 10,000 events/s end to end: {'met' if summary['tarn']['events_per_s'] >= 10_000 else 'MISSED'};"
          f" target p99 <= 1.5x raw: {'met' if p99_ratio <= 1.5 else 'MISSED'}")
    print(json.dumps({"summary": summary, "throughput_ratio": tput_ratio, "p99_ratio": p99_ratio,
                      "p99_ratio_opaque": opaque_ratio}))
    return 0 if summary["tarn"]["events_per_s"] >= 10_000 and p99_ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
