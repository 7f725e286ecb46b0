"""tarn-am keeps its streams bounded (real Redis from the local stack): each snapshot trims the
lifecycle stream (and each minute's first the acks stream), a restarted tarn-am still knows an instance whose announcements were
trimmed away, and an ended container's command stream goes."""
from __future__ import annotations

import pytest

from tarn_shared import events as ev
from tarn_shared.streams import read_range

from tarn_am.bus import RedisBus
from tarn_am.view import FleetView

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
APP = "application_1700000000000_0007"


def cid(n: int) -> str:
    return f"container_1700000000000_0007_01_{n:06d}"


def ready(deployment, n, seq=1):
    return ev.InstanceReady(deployment=deployment, app_id=APP, instance_id=cid(n), seq=seq,
                            endpoints=ev.Endpoints(host=f"node{n}", http_port=8000), models=["identity"])


def snapshot_of(view: FleetView, deployment: str, seq: int) -> ev.MembershipSnapshot:
    members = [ev.MemberState(instance_id=m.instance_id, state=m.state, seq=m.seq, endpoints=m.endpoints,
                              models=list(m.models))
               for m in view.membership.members.values() if m.state is not ev.InstanceState.STOPPED]
    return ev.MembershipSnapshot(deployment=deployment, app_id=APP, snapshot_seq=seq,
                                 lifecycle_through=view.lifecycle_through, desired_count=len(members),
                                 members=members)


async def entries(bus, stream):
    return [(i, ev.decode(f)) async for i, f in read_range(bus.client, stream)]


async def consume_all(bus: RedisBus, view: FleetView) -> None:
    bus.consumers_for(view)
    for consumer in bus.consumers:
        await consumer.run_once()


async def test_a_restarted_tarn_am_knows_an_instance_whose_announcements_were_trimmed_away(redis_url, deployment):
    bus = RedisBus(redis_url, deployment, APP)
    stream = ev.lifecycle_stream(deployment)
    view = FleetView(deployment)
    await consume_all(bus, view)  # tarn-am's groups exist, as when it runs
    long_lived = await bus.publish_lifecycle(ready(deployment, 1))
    for n in range(2, 40):  # churn after it: others come and go
        await bus.publish_lifecycle(ready(deployment, n))
        await bus.publish_lifecycle(ev.InstanceStopped(**ready(deployment, n, seq=2).model_dump(
            exclude={"type", "state", "event_id"})))
    await consume_all(bus, view)
    await bus.publish_snapshot(snapshot_of(view, deployment, 1), live={cid(1)})
    await consume_all(bus, view)
    await bus.publish_snapshot(snapshot_of(view, deployment, 2), live={cid(1)})
    left = await entries(bus, stream)
    assert long_lived not in [i for i, _ in left], "the stream was not trimmed past the first announcement"
    assert len(left) < 20

    restarted = FleetView(deployment)
    replayed = await RedisBus(redis_url, deployment, APP).bootstrap(restarted)
    assert replayed == len(left)
    member = restarted.membership.members[cid(1)]
    assert (member.state, member.seq, member.endpoints.address) == (ev.InstanceState.READY, 1, "node1:8000")
    alive = {i for i, m in restarted.membership.members.items() if m.state is not ev.InstanceState.STOPPED}
    assert alive == {cid(1)}
    await bus.close()


async def test_the_first_snapshot_trims_the_acks_tarn_am_has_read_and_keeps_the_rest(redis_url, deployment):
    bus = RedisBus(redis_url, deployment, APP)
    view = FleetView(deployment)
    acks = ev.acks_stream(deployment)

    def ack(n):
        return ev.CommandAck(deployment=deployment, app_id=APP, container_id=cid(n), command_id=f"cmd-{n}",
                             command_type="command.drain", status=ev.AckStatus.ACCEPTED)

    await consume_all(bus, view)
    for n in range(30):
        await bus.publisher.publish(acks, ack(n))
    await consume_all(bus, view)
    unread = [await bus.publisher.publish(acks, ack(n)) for n in range(30, 35)]
    await bus.publish_snapshot(snapshot_of(view, deployment, 1), live=set())
    left = [i for i, _ in await entries(bus, acks)]
    assert left[-5:] == unread, "an ack tarn-am has not read yet went"
    assert len(left) < 20  # trimmed by whole stream nodes (XTRIM ~), never past an unread ack
    assert view.acked >= {f"cmd-{n}" for n in range(30)}
    await bus.close()


async def test_an_ended_containers_command_stream_goes_and_a_live_ones_stays(redis_url, deployment):
    bus = RedisBus(redis_url, deployment, APP)
    for n in (1, 2, 3):
        await bus.send_command(ev.DrainCommand(deployment=deployment, app_id=APP, container_id=cid(n)))
    dead_letters = ev.dead_letter_stream(ev.commands_stream(deployment, cid(3)))
    await bus.client.xadd(dead_letters, {"event": "{nope"})

    await bus.delete_command_streams([cid(1)])
    assert not await bus.client.exists(ev.commands_stream(deployment, cid(1)))
    # cid(3) ended while tarn-am was away: the sweep finds it; cid(2) is live.
    assert await bus.sweep_command_streams(live={cid(2)}) == [cid(3)]
    assert await bus.client.exists(ev.commands_stream(deployment, cid(2)))
    assert not await bus.client.exists(ev.commands_stream(deployment, cid(3)))
    assert await bus.client.exists(dead_letters), "dead letters are for operators; they stay"
    await bus.client.delete(dead_letters)
    await bus.close()


async def test_the_first_snapshot_sweeps_and_later_ones_only_after_the_interval(redis_url, deployment):
    now = [0.0]
    bus = RedisBus(redis_url, deployment, APP, clock=lambda: now[0])
    view = FleetView(deployment)
    await consume_all(bus, view)
    await bus.send_command(ev.DrainCommand(deployment=deployment, app_id=APP, container_id=cid(1)))
    await bus.publish_snapshot(snapshot_of(view, deployment, 1), live=set())
    assert not await bus.client.exists(ev.commands_stream(deployment, cid(1)))
    await bus.send_command(ev.DrainCommand(deployment=deployment, app_id=APP, container_id=cid(2)))
    now[0] = 59.0
    await bus.publish_snapshot(snapshot_of(view, deployment, 2), live=set())
    assert await bus.client.exists(ev.commands_stream(deployment, cid(2)))
    now[0] = 61.0
    await bus.publish_snapshot(snapshot_of(view, deployment, 3), live=set())
    assert not await bus.client.exists(ev.commands_stream(deployment, cid(2)))
    await bus.close()
