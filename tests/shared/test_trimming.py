"""Trimming real streams (Redis from the local stack): what a live group or a restarted consumer
needs stays, and a consumer that starts from nothing after trimming rebuilds exactly the fleet."""
from __future__ import annotations

import asyncio
import random
from typing import Dict, Optional

import pytest

from tarn_shared import events as ev
from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.membership import MembershipView, apply_event, apply_snapshot
from tarn_shared.streams import StreamPublisher, as_text, connect, group_positions, read_range, trim_lifecycle
from tests.support.polling import until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
APP = "application_1700000000000_0001"


def requested(deployment, n):
    return ev.ContainerRequested(deployment=deployment, app_id=APP, service=f"svc-{n}")


def instance_event(kind, deployment, slot, generation, seq):
    return kind(deployment=deployment, app_id=APP, instance_id=f"container_{slot:04d}_{generation:04d}", seq=seq,
                endpoints=ev.Endpoints(host=f"node-{slot:04d}", http_port=8000), models=["identity"])


async def ids_in(client, stream):
    return [entry_id async for entry_id, _ in read_range(client, stream)]


class Recorder:
    def __init__(self):
        self.seen = []

    async def __call__(self, stream, entry_id, event):
        self.seen.append(entry_id)


async def test_trimming_keeps_what_a_lagging_group_and_a_dead_consumers_pending_entries_need(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    first = [await publisher.publish(stream, requested(deployment, n)) for n in range(50)]
    # A consumer takes 10 entries and dies holding them; a slow group has read 20; the fast one all.
    await client.xgroup_create(stream, "dead", id="0")
    await client.xreadgroup("dead", "doomed", {stream: ">"}, count=10)
    await client.xgroup_create(stream, "slow", id=first[19])
    await client.xgroup_create(stream, "fast", id=first[-1])
    snapshot_through = first[-5]
    point = await trim_lifecycle(client, stream, snapshot_through)
    assert point == first[0]  # the dead consumer's pending entries hold everything
    await client.xack(stream, "dead", *first[:10])
    await client.xgroup_destroy(stream, "dead")
    point = await trim_lifecycle(client, stream, snapshot_through)
    assert point == first[19]
    left = await ids_in(client, stream)
    assert left[-31:] == first[19:], "an entry the slow group was not delivered yet went"
    assert len(left) < 50, "nothing was trimmed"
    recorder = Recorder()
    slow = StreamConsumer(client, [stream], ConsumerConfig(group="slow", consumer="s", block_ms=50), recorder)
    await until(lambda: len(recorder.seen) == 30, step=slow.run_once)
    assert recorder.seen == first[20:]
    await client.aclose()


async def test_a_group_whose_consumers_have_been_idle_too_long_no_longer_holds_the_stream(redis_url, deployment):
    client = connect(redis_url)
    stream = ev.lifecycle_stream(deployment)
    publisher = StreamPublisher(client)
    sent = [await publisher.publish(stream, requested(deployment, n)) for n in range(30)]
    await client.xgroup_create(stream, "retired", id="0")
    await client.xreadgroup("retired", "r", {stream: ">"}, count=5)
    await asyncio.sleep(0.3)
    positions = {g.name: g for g in await group_positions(client, stream)}
    assert positions["retired"].oldest_pending_id == sent[0] and positions["retired"].idle_ms >= 250
    assert await trim_lifecycle(client, stream, sent[20], abandoned_after_ms=60_000) == sent[0]
    assert await trim_lifecycle(client, stream, sent[20], abandoned_after_ms=200) == sent[20]
    assert (await ids_in(client, stream))[-10:] == sent[20:]
    await client.aclose()


class Author:
    """What tarn-am does with the lifecycle stream: consume it through its group, and publish
    a snapshot of what it applied (non-stopped members, ``lifecycle_through``), then trim."""

    def __init__(self, client, deployment):
        self.client, self.deployment = client, deployment
        self.stream = ev.lifecycle_stream(deployment)
        self.view = MembershipView()
        self.through: Optional[str] = None
        self.seq = 0
        self.consumer = StreamConsumer(client, [self.stream], ConsumerConfig(group="tarn-am", consumer="am",
                                                                             block_ms=10), self._apply)

    async def _apply(self, stream, entry_id, event):
        self.through = entry_id
        if isinstance(event, ev.InstanceEvent):
            self.view = apply_event(self.view, event, entry_id)

    async def snapshot(self, publisher):
        await self.consumer.run_once()
        self.seq += 1
        members = [ev.MemberState(instance_id=m.instance_id, state=m.state, seq=m.seq, endpoints=m.endpoints,
                                  models=list(m.models))
                   for m in self.view.members.values() if m.state is not ev.InstanceState.STOPPED]
        await publisher.publish(self.stream, ev.MembershipSnapshot(
            deployment=self.deployment, app_id=APP, snapshot_seq=self.seq, lifecycle_through=self.through,
            desired_count=len(members), members=members))
        return await trim_lifecycle(self.client, self.stream, self.through)


async def rebuilt(client, stream) -> MembershipView:
    """A consumer starting from nothing: the newest snapshot, then everything from its through on."""
    start, view = "-", MembershipView()
    async for _, fields in read_range(client, stream, newest_first=True, batch=20):
        event = ev.decode(fields)
        if isinstance(event, ev.MembershipSnapshot):
            start = event.lifecycle_through or "-"
            break
    async for entry_id, fields in read_range(client, stream, start=start):
        event = ev.decode(fields)
        if isinstance(event, ev.MembershipSnapshot):
            view = apply_snapshot(view, event, entry_id)
        elif isinstance(event, ev.InstanceEvent):
            view = apply_event(view, event, entry_id)
    return view


async def test_a_consumer_restarted_after_trimming_rebuilds_exactly_the_fleet(redis_url, deployment):
    client = connect(redis_url)
    publisher = StreamPublisher(client)
    author = Author(client, deployment)
    await author.consumer.ensure_groups()
    slow = StreamConsumer(client, [author.stream], ConsumerConfig(group="gateway-sync.slow", consumer="g",
                                                                  block_ms=10), Recorder())
    await slow.ensure_groups()
    rng = random.Random(13)
    generation: Dict[int, int] = {}
    truth: Dict[str, tuple] = {}  # what the node-agents announced last: instance id -> (state, seq)
    first = None
    for round_ in range(80):
        for slot in rng.sample(range(40), 8):  # an instance comes, drains, stops; a new one takes the slot
            born = generation.setdefault(slot, 0)
            state, seq = truth.get(f"container_{slot:04d}_{born:04d}", (None, 0))
            kind = {None: ev.InstanceReady, ev.InstanceState.READY: ev.InstanceDraining,
                    ev.InstanceState.DRAINING: ev.InstanceStopped}[state]
            event = instance_event(kind, deployment, slot, born, seq + 1)
            entry_id = await publisher.publish(author.stream, event)
            first = first or entry_id
            truth[event.instance_id] = (event.state, event.seq)
            if kind is ev.InstanceStopped:
                generation[slot] += 1
        await author.snapshot(publisher)
        if round_ % 10 == 9:
            await slow.run_once()
    await author.snapshot(publisher)
    left = await ids_in(client, author.stream)
    assert left[0] != first and len(left) < 80 * 9 / 2, f"the stream was not trimmed: {len(left)} entries"
    view = await rebuilt(client, author.stream)
    alive = {i: s for i, s in truth.items() if s[0] is not ev.InstanceState.STOPPED}
    assert {i: (m.state, m.seq) for i, m in view.members.items() if m.state is not ev.InstanceState.STOPPED} \
        == alive
    assert len(alive) > 20 and max(generation.values()) > 3  # the fleet churned, and lives
    await client.aclose()
