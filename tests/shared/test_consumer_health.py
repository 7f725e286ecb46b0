"""StreamConsumer's health (additive): healthy once connected and caught up, unhealthy while
Redis is gone or the consumer is behind, "healthy since" moved forward by every recovery."""
from __future__ import annotations

import asyncio
import time

import pytest

from tarn_shared import events as ev
from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.streams import Backoff, StreamPublisher, connect
from tests.support.polling import until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def requested(deployment, n=0):
    return ev.ContainerRequested(deployment=deployment, app_id="app", service=f"svc-{n}", reason="")


async def handled(stream, entry_id, event):
    return None


async def test_health_follows_redis_going_away_and_coming_back_empty(stack, deployment):
    client = connect(stack.env["REDIS_URL"])
    stream = ev.lifecycle_stream(deployment)
    consumer = StreamConsumer(client, [stream], ConsumerConfig(
        group="g", consumer="c", block_ms=100, backoff=Backoff(initial_s=0.05, max_s=0.3)), handled)
    assert not consumer.health.healthy and consumer.health.healthy_since is None
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await until(lambda: consumer.health.healthy)
    first_since = consumer.health.healthy_since
    assert first_since is not None and consumer.health.last_ok >= first_since

    stack.kill("redis")
    await until(lambda: not consumer.health.healthy, timeout_s=15)
    assert consumer.health.healthy_since is None
    down_at = time.time()
    stack.start("redis")  # empty: no persistence
    await until(lambda: consumer.health.healthy, timeout_s=20)
    assert consumer.health.healthy_since >= down_at > first_since
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    await client.aclose()


async def test_a_consumer_reading_full_batches_is_behind_until_it_caught_up(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    for i in range(25):
        await publisher.publish(stream, requested(deployment, n=i))
    consumer = StreamConsumer(client, [stream], ConsumerConfig(group="g", consumer="c", block_ms=50, count=10),
                              handled)
    stop = asyncio.Event()
    passes = []
    original = consumer.run_once

    async def counted():
        result = await original()
        passes.append((result, consumer.health.behind))
        return result

    consumer.run_once = counted
    task = asyncio.create_task(consumer.run(stop))
    await until(lambda: consumer.health.healthy)
    assert passes[0] == (10, True)  # the first pass read a full batch: behind, not yet healthy
    assert consumer.stats.handled == 25
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    await client.aclose()
