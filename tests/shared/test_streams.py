"""The streams client against a real Redis (from the local stack)."""
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tarn_shared import events as ev
from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.streams import Backoff, StreamPublisher, connect, read_range
from tests.support.polling import until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
ROOT = Path(__file__).resolve().parents[2]


def requested(deployment, reason="", n=0):
    return ev.ContainerRequested(deployment=deployment, app_id="app", service=f"svc-{n}", reason=reason)


class Recorder:
    def __init__(self, fail_on=None):
        self.seen = []
        self.fail_on = fail_on

    async def __call__(self, stream, entry_id, event):
        if self.fail_on is not None and self.fail_on(event):
            raise RuntimeError("handler refuses this one")
        self.seen.append(event)


async def test_events_are_handled_in_stream_order_and_acked(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    sent = [await publisher.publish(stream, requested(deployment, n=i)) for i in range(300)]
    recorder = Recorder()
    consumer = StreamConsumer(client, [stream], ConsumerConfig(group="g", consumer="c1", block_ms=50), recorder)
    await until(lambda: len(recorder.seen) == 300, step=consumer.run_once)
    assert [e.service for e in recorder.seen] == [f"svc-{i}" for i in range(300)]
    assert (await client.xpending(stream, "g"))["pending"] == 0
    assert len(sent) == len(set(sent)) == 300
    await client.aclose()


async def test_a_consumer_killed_while_handling_loses_nothing(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    record = f"{deployment}:handled"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/shared/consumer_proc.py"), redis_url, stream,
                             "g", "doomed", record], cwd=ROOT)
    try:
        sent = [requested(deployment, n=i) for i in range(5)]
        hang = requested(deployment, reason="hang", n=5)
        sent += [hang] + [requested(deployment, n=i) for i in range(6, 10)]
        for event in sent:
            await publisher.publish(stream, event)
        deadline = time.monotonic() + 30
        while not await client.lrange(record + ":hung", 0, -1):
            assert time.monotonic() < deadline, "the doomed consumer never reached the hanging event"
            assert proc.poll() is None, "the doomed consumer died on its own"
            await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    handled_by_doomed = {x.decode() for x in await client.lrange(record, 0, -1)}
    assert hang.event_id not in handled_by_doomed
    recorder = Recorder()
    survivor = StreamConsumer(client, [stream], ConsumerConfig(group="g", consumer="survivor", block_ms=50,
                                                               reclaim_idle_ms=300), recorder)
    everything = {e.event_id for e in sent}
    await until(lambda: handled_by_doomed | {e.event_id for e in recorder.seen} == everything,
                step=survivor.run_once)
    assert hang.event_id in {e.event_id for e in recorder.seen}, "the entry the dead consumer held was not reclaimed"
    assert survivor.stats.reclaimed >= 1
    assert (await client.xpending(stream, "g"))["pending"] == 0
    await client.aclose()


async def test_a_poison_entry_is_dead_lettered_while_the_rest_flow(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    await publisher.publish(stream, requested(deployment, n=1))
    await client.xadd(stream, {"event": "{garbage"})
    await publisher.publish(stream, requested(deployment, n=2))
    recorder = Recorder()
    consumer = StreamConsumer(client, [stream], ConsumerConfig(group="g", consumer="c", block_ms=50), recorder)
    await until(lambda: len(recorder.seen) == 2, step=consumer.run_once)
    dead = await client.xrange(ev.dead_letter_stream(stream))
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"event"] == b"{garbage" and b"not JSON" in fields[b"dead_reason"]
    assert consumer.stats.dead_lettered == 1
    assert (await client.xpending(stream, "g"))["pending"] == 0
    await client.aclose()


async def test_an_entry_whose_handler_keeps_failing_is_dead_lettered_after_max_deliveries(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    await publisher.publish(stream, requested(deployment, reason="bad"))
    await publisher.publish(stream, requested(deployment, n=2))
    recorder = Recorder(fail_on=lambda e: e.reason == "bad")
    consumer = StreamConsumer(client, [stream], ConsumerConfig(
        group="g", consumer="c", block_ms=20, reclaim_idle_ms=50, max_deliveries=3), recorder)
    await until(lambda: consumer.stats.dead_lettered == 1, step=consumer.run_once)
    assert [e.service for e in recorder.seen] == ["svc-2"]
    assert consumer.stats.failed == 3
    dead = await client.xrange(ev.dead_letter_stream(stream))
    assert b"failed 3 deliveries" in dead[0][1][b"dead_reason"]
    await client.aclose()


async def test_a_newer_minor_is_handled_and_an_unknown_major_is_dead_lettered(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    payload = json.loads(ev.encode(requested(deployment))["event"])
    await client.xadd(stream, {"event": json.dumps(dict(payload, schema_version="1.9", new_field=[1]))})
    await client.xadd(stream, {"event": json.dumps(dict(payload, schema_version="2.0"))})
    recorder = Recorder()
    consumer = StreamConsumer(client, [stream], ConsumerConfig(group="g", consumer="c", block_ms=50), recorder)
    await until(lambda: len(recorder.seen) == 1 and consumer.stats.dead_lettered == 1, step=consumer.run_once)
    dead = await client.xrange(ev.dead_letter_stream(stream))
    assert b"major version 2" in dead[0][1][b"dead_reason"]
    await client.aclose()


async def test_telemetry_is_trimmed_approximately(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.telemetry_stream(deployment)
    publisher = StreamPublisher(client)
    sample = ev.TelemetrySample(deployment=deployment, app_id="a", instance_id="c", interval_s=2)
    for _ in range(1000):
        await publisher.publish(stream, sample, maxlen=100)
    assert 100 <= await client.xlen(stream) < 1000
    await client.aclose()


async def test_consumers_recreate_their_groups_after_redis_restarts_without_persistence(stack, deployment):
    client = connect(stack.env["REDIS_URL"])
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    recorder = Recorder()
    consumer = StreamConsumer(client, [stream], ConsumerConfig(
        group="g", consumer="c", block_ms=100, backoff=Backoff(initial_s=0.05, max_s=0.5)), recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await publisher.publish(stream, requested(deployment, n=1))
    await until(lambda: len(recorder.seen) == 1)

    stack.restart("redis")  # SIGKILL, then a fresh process with no data on the same port

    await publisher.publish(stream, requested(deployment, n=2), retry_for_s=10)
    await until(lambda: len(recorder.seen) == 2, timeout_s=20)
    assert recorder.seen[-1].service == "svc-2"
    assert consumer.stats.groups_created >= 2
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    await client.aclose()


async def test_publishing_while_redis_is_down_fails_with_a_clear_error_after_the_retry_window(deployment):
    from tarn_shared.errors import UnavailableError
    from tests.support.stack_fixture import tarnstack

    client = connect(f"redis://127.0.0.1:{tarnstack.free_port()}/0", socket_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="Redis unreachable while publishing"):
        await StreamPublisher(client).publish(ev.lifecycle_stream(deployment), requested(deployment), retry_for_s=0.5)
    assert time.monotonic() - started < 5
    await client.aclose()


async def test_deployment_records_are_stored_announced_and_bad_ones_skipped(redis_url, deployment):
    from tarn_shared.deployments import put_record, read_records, remove_record

    client = connect(redis_url)
    record = ev.DeploymentRecord(deployment=deployment, app_id="application_1_0001", zk_ensemble="127.0.0.1:2181")
    await put_record(client, record)
    await client.hset(ev.deployments_key(), f"{deployment}-bad", "{nope")
    records = await read_records(client)
    assert records[deployment] == record
    assert f"{deployment}-bad" not in records
    announced = await client.xrevrange(ev.deployments_stream(), count=50)
    assert any(ev.decode(fields) == record for _, fields in announced)
    await remove_record(client, record)
    assert deployment not in await read_records(client)
    last = ev.decode((await client.xrevrange(ev.deployments_stream(), count=1))[0][1])
    assert last.deployment == deployment and last.removed
    await client.hdel(ev.deployments_key(), f"{deployment}-bad")
    await client.aclose()


async def test_a_group_lost_with_redis_is_recreated_from_the_start_even_when_new_groups_start_at_the_end(
        stack, deployment):
    client = connect(stack.env["REDIS_URL"])
    stream = ev.lifecycle_stream(deployment)
    recorder = Recorder()
    consumer = StreamConsumer(client, [stream], ConsumerConfig(group="g", consumer="c", block_ms=50, start_id="$"),
                              recorder)
    await consumer.run_once()
    await client.delete(stream)  # what a restart without persistence leaves
    await StreamPublisher(client).publish(stream, requested(deployment, n=7))  # published before the group is back
    await until(lambda: len(recorder.seen) == 1, step=consumer.run_once)
    assert recorder.seen[0].service == "svc-7"
    await client.aclose()


async def test_a_frozen_redis_fails_a_blocking_read_after_its_deadline_and_the_loop_carries_on(
        stack, deployment, monkeypatch):
    import os

    from tarn_shared import consumer as consumer_module

    monkeypatch.setattr(consumer_module, "READ_GRACE_S", 1.0)
    client = connect(stack.env["REDIS_URL"])
    stream = ev.lifecycle_stream(deployment)
    recorder = Recorder()
    consumer = StreamConsumer(client, [stream], ConsumerConfig(
        group="g", consumer="c", block_ms=100, backoff=Backoff(initial_s=0.05, max_s=0.2)), recorder)
    await consumer.run_once()
    pid = stack.state["processes"]["redis"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # the process lives and keeps its sockets, but answers nothing
    try:
        started = time.monotonic()
        with pytest.raises(consumer_module.RedisTimeoutError):
            await consumer.run_once()
        assert time.monotonic() - started < 5
    finally:
        os.kill(pid, signal.SIGCONT)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await StreamPublisher(client).publish(stream, requested(deployment, n=3), retry_for_s=10)
    await until(lambda: len(recorder.seen) == 1)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    await client.aclose()


async def test_concurrent_publishes_are_pipelined_in_call_order_and_a_cancelled_caller_strands_no_one(
        redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    calls = [asyncio.ensure_future(publisher.publish(stream, requested(deployment, n=i))) for i in range(500)]
    calls[10].cancel()  # its caller gives up; the others must still be answered
    results = await asyncio.gather(*calls, return_exceptions=True)
    ids = [r for i, r in enumerate(results) if i != 10]
    assert all(isinstance(i, str) for i in ids)
    stored = [ev.decode(fields).service for _, fields in await client.xrange(stream)]
    assert stored == [f"svc-{i}" for i in range(500) if i != 10 or "svc-10" in stored]
    assert ids == sorted(ids, key=lambda x: tuple(map(int, x.split("-"))))
    await client.aclose()


async def test_read_range_pages_every_entry_in_order_both_ways_and_honours_bounds(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    ids = [(await client.xadd(stream, {"n": str(i)})).decode() for i in range(25)]
    forward = [entry_id async for entry_id, _ in read_range(client, stream, batch=10)]
    backward = [entry_id async for entry_id, _ in read_range(client, stream, batch=10, newest_first=True)]
    bounded = [f[b"n"] async for _, f in read_range(client, stream, start=ids[5], end=ids[14], batch=4)]
    assert forward == ids and backward == ids[::-1]
    assert bounded == [str(i).encode() for i in range(5, 15)]
    assert [e async for e in read_range(client, f"{stream}:missing")] == []
    await client.aclose()


async def test_a_consumer_whose_stream_is_deleted_under_its_blocked_read_carries_on(redis_url, deployment):
    # Redis 7 answers a read blocked on a deleted stream with "UNBLOCKED the stream key no longer exists".
    client = connect(redis_url)
    stream = ev.commands_stream(deployment, "container_1")
    recorder = Recorder()
    consumer = StreamConsumer(client, [stream], ConsumerConfig(group="node-agent", consumer="c", block_ms=5000),
                              recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await until(lambda: consumer.stats.groups_created == 1)
    await asyncio.sleep(0.2)  # the read is blocked now
    other = connect(redis_url)
    await other.delete(stream)
    await until(lambda: consumer.stats.groups_created == 2, timeout_s=10)
    assert not task.done(), "the consumer loop ended"
    await StreamPublisher(other).publish(stream, requested(deployment, n=8))
    await until(lambda: [e.service for e in recorder.seen] == ["svc-8"], timeout_s=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    await other.aclose()
    await client.aclose()
