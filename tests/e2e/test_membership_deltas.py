"""Membership deltas between full snapshots keep the restart guarantees (real Redis from the
local stack): tarn-am's announcer and bus publish, its own consumers advance
``lifecycle_through``, and gateway-sync's replay and sequence rules read the stream back."""
from __future__ import annotations

from typing import Dict, Iterable

import pytest

from tarn_am.announcements import Announcer
from tarn_am.bus import RedisBus
from tarn_am.view import FleetView
from tarn_gateway_sync.discovery import replay
from tarn_gateway_sync.routing import Fleet, apply_lifecycle
from tarn_shared import events as ev
from tarn_shared.streams import read_range

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
APP = "application_1700000000000_0009"
ADMIT_ALL = lambda event: event  # noqa: E731


def cid(n: int) -> str:
    return f"container_1700000000000_0009_01_{n:06d}"


def instance(kind, deployment: str, n: int, seq: int):
    return kind(deployment=deployment, app_id=APP, instance_id=cid(n), seq=seq,
                endpoints=ev.Endpoints(host=f"node{n}", http_port=8000), models=["identity"])


class AmSide:
    """What tarn-am does around its membership announcements, against the real Redis."""

    def __init__(self, redis_url: str, deployment: str) -> None:
        self.deployment = deployment
        self.bus = RedisBus(redis_url, deployment, APP)
        self.view = FleetView(deployment)
        self.announcer = Announcer(deployment, APP)
        self.bus.consumers_for(self.view)
        self.published: list = []

    async def agent_says(self, kind, n: int, seq: int) -> str:
        return await self.bus.publish_lifecycle(instance(kind, self.deployment, n, seq))

    async def observe(self) -> None:
        for consumer in self.bus.consumers:
            await consumer.run_once()

    async def announce(self, live: Iterable[int], now: float, full: bool = False):
        live_ids = {cid(n) for n in live}
        update, self.announcer = self.announcer.update(self.view.membership.members, live_ids,
                                                       self.view.lifecycle_through, len(live_ids), now, full)
        if isinstance(update, ev.MembershipSnapshot):
            await self.bus.publish_snapshot(update, live_ids)
        elif update is not None:
            await self.bus.publish_lifecycle(update)
        self.announcer = self.announcer.sent(update, self.view.version, now)
        self.published.append(update)
        return update


async def read_back(bus: RedisBus, stream: str) -> Fleet:
    """A gateway-sync replica that starts now: the replay from the newest full snapshot on."""
    return await replay(bus.client, stream, Fleet(), ADMIT_ALL)


def routable_ids(fleet: Fleet) -> Dict[str, str]:
    return {m.instance_id: address for address, m in fleet.routable().items()}


async def test_a_replica_restarted_between_full_snapshots_rebuilds_what_the_deltas_announced(redis_url, deployment):
    am = AmSide(redis_url, deployment)
    stream = ev.lifecycle_stream(deployment)
    await am.observe()  # tarn-am's groups exist, as when it runs
    for n in range(1, 41):
        await am.agent_says(ev.InstanceReady, n, 1)
    await am.observe()
    full = await am.announce(range(1, 41), now=0.0)
    assert isinstance(full, ev.MembershipSnapshot) and len(full.members) == 40

    await am.agent_says(ev.InstanceDraining, 3, 2)
    await am.agent_says(ev.InstanceStopped, 4, 2)
    await am.agent_says(ev.InstanceReady, 41, 1)
    await am.observe()
    live = set(range(1, 42)) - {4, 5}  # container 5 ended without its agent saying so
    first = await am.announce(live, now=1.0)
    await am.agent_says(ev.InstanceReady, 42, 1)
    await am.observe()
    second = await am.announce(live | {42}, now=2.0)
    assert isinstance(first, ev.MembershipDelta) and isinstance(second, ev.MembershipDelta)
    assert sorted(m.instance_id for m in first.members) == [cid(3), cid(41)]
    assert first.removed == [cid(4), cid(5)] and [m.instance_id for m in second.members] == [cid(42)]
    # What a change costs no longer carries the fleet: each delta is a small part of the snapshot.
    assert all(len(ev.encode(d)["event"]) * 5 < len(ev.encode(full)["event"]) for d in (first, second))

    restarted = await read_back(am.bus, stream)
    expected = sorted(cid(n) for n in live | {42} if n != 3)
    assert restarted.authoritative and sorted(routable_ids(restarted)) == expected
    assert restarted.view.members[cid(5)].state is ev.InstanceState.STOPPED, "the delta's removal was not applied"
    assert set(restarted.draining()) == {"node3:8000"}

    # A replica that followed every entry live agrees with the restarted one.
    followed = Fleet()
    async for entry_id, fields in read_range(am.bus.client, stream):
        followed = apply_lifecycle(followed, ev.decode(fields), entry_id)
    assert routable_ids(followed) == routable_ids(restarted)
    await am.bus.close()


async def test_a_stale_delta_never_resurrects_an_instance_stopped_before_it(redis_url, deployment):
    am = AmSide(redis_url, deployment)
    stream = ev.lifecycle_stream(deployment)
    await am.observe()
    for n in (1, 2):
        await am.agent_says(ev.InstanceReady, n, 1)
    await am.observe()
    await am.announce({1, 2}, now=0.0)
    await am.agent_says(ev.InstanceDraining, 1, 2)
    await am.observe()
    stale, am.announcer = am.announcer.update(am.view.membership.members, {cid(1), cid(2)},
                                              am.view.lifecycle_through, 2, now=1.0)
    assert [(m.instance_id, m.state) for m in stale.members] == [(cid(1), ev.InstanceState.DRAINING)]
    await am.agent_says(ev.InstanceStopped, 1, 3)  # lands ahead of the delta built before it
    await am.bus.publish_lifecycle(stale)

    restarted = await read_back(am.bus, stream)
    assert restarted.view.members[cid(1)].state is ev.InstanceState.STOPPED
    assert sorted(routable_ids(restarted)) == [cid(2)] and restarted.draining() == {}
    await am.bus.close()


async def test_an_emptied_redis_with_only_deltas_in_it_never_reads_as_an_empty_fleet(redis_url, deployment):
    am = AmSide(redis_url, deployment)
    stream = ev.lifecycle_stream(deployment)
    await am.observe()
    for n in range(1, 11):
        await am.agent_says(ev.InstanceReady, n, 1)
    await am.observe()
    await am.announce(range(1, 11), now=0.0)
    serving = await read_back(am.bus, stream)
    assert serving.authoritative and len(serving.routable()) == 10

    await am.bus.client.delete(stream)  # Redis came back empty (it may run without persistence)
    await am.observe()  # tarn-am's consumer finds its group gone and makes it again
    await am.agent_says(ev.InstanceReady, 11, 1)
    await am.observe()
    delta = await am.announce(range(1, 12), now=1.0)
    assert isinstance(delta, ev.MembershipDelta) and [m.instance_id for m in delta.members] == [cid(11)]

    fresh = await read_back(am.bus, stream)
    assert not fresh.authoritative, "a delta stood for the whole fleet"
    assert sorted(routable_ids(fresh)) == [cid(11)] and fresh.gone() == frozenset()
    kept = serving
    async for entry_id, fields in read_range(am.bus.client, stream):
        kept = apply_lifecycle(kept, ev.decode(fields), entry_id)
    assert len(kept.routable()) == 11, "a replica serving before the flush lost members"

    # tarn-am's bus recovery asks for a full snapshot: the emptied stream is whole again.
    full = await am.announce(range(1, 12), now=2.0, full=True)
    assert isinstance(full, ev.MembershipSnapshot) and len(full.members) == 11
    reseeded = await read_back(am.bus, stream)
    assert reseeded.authoritative and len(reseeded.routable()) == 11
    await am.bus.close()
