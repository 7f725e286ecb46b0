"""The deployment record's keeper (record_keeper.py) on the stack's real Redis: refreshed while
the deployment runs, never again once it stops, marked removed when the stop has drained it
(issue 13, item 3: gateway-sync stops serving it, another deployment may claim its places)."""
from __future__ import annotations

import asyncio

import pytest

from tarn_shared import events as ev
from tarn_shared.streams import connect

from tarn_am.bus import RedisBus
from tarn_am.record_keeper import RECORD_REFRESH_S, RecordKeeper, deployment_record
from tarn_am.settings import AmSettings
from tests.support.polling import until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_the_record_is_refreshed_until_a_stop_then_marked_removed_once_drained(redis_url, deployment):
    settings = AmSettings(deployment=deployment, slots=["s=h"], redis_url=redis_url)
    bus = RedisBus(redis_url, deployment, "application_1_0042")
    keeper = RecordKeeper(bus, deployment_record(settings, "application_1_0042", "http://am:1"))
    client = connect(redis_url)
    flags = {"stopping": False, "drained": False}
    clock = [0.0]
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.keep(stop, lambda: flags["stopping"], lambda: flags["drained"],
                                           clock=lambda: clock[0]))

    async def stored():
        return await client.hget(ev.deployments_key(), deployment)
    try:
        await until(stored, 10, "the record published")
        await client.hdel(ev.deployments_key(), deployment)  # Redis came back empty
        clock[0] += RECORD_REFRESH_S
        await until(stored, 10, "the record published again")

        flags["stopping"] = True
        await client.hdel(ev.deployments_key(), deployment)
        clock[0] += RECORD_REFRESH_S * 2
        await asyncio.sleep(2.5)  # two of the keeper's steps
        assert await stored() is None, "a stopping deployment's record was published again"

        await bus.put_record(keeper.record)  # as a previous tarn-am left it
        flags["drained"] = True
        await until(lambda: keeper.removed, 10, "the record marked removed")
        assert await stored() is None
        announced = [ev.decode(f) for _, f in await client.xrange(ev.deployments_stream())]
        mine = [r for r in announced if r.deployment == deployment]
        assert [r.removed for r in mine][-1] is True and sum(r.removed for r in mine) == 1
        await asyncio.sleep(1.5)
        assert not task.done(), "the keeper ended: runtime.py would take tarn-am down with it"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await client.aclose()
        await bus.close()
