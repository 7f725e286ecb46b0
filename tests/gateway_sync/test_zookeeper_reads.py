"""A reconcile reads every znode of a big fleet; an apply's writes made meanwhile must not
wait a round trip each behind those reads on the session's one connection (real ZooKeeper)."""
import asyncio
import time

import pytest

from tarn_gateway_sync.plan import CreateZnode
from tarn_gateway_sync.zookeeper import OBSERVE_BATCH, Ensemble

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ZNODES = 4_000
PATH = "/instances"
PAYLOAD = b'{"host": "127.0.0.1", "port": 8000, "models": ["identity"]}' * 5  # about a real znode's size


async def test_an_applys_writes_made_while_every_znode_is_read_do_not_wait_for_the_whole_read(zk_hosts):
    assert ZNODES >= 10 * OBSERVE_BATCH
    ensemble = Ensemble(zk_hosts, loop=asyncio.get_running_loop())
    await ensemble.start()
    try:
        client = ensemble.client
        await asyncio.to_thread(client.ensure_path, PATH)
        names = [f"127.0.0.1:{10_000 + i}" for i in range(ZNODES)]

        def create_all() -> None:
            for result in [client.create_async(f"{PATH}/{name}", PAYLOAD) for name in names]:
                result.get(timeout=30)
        await asyncio.to_thread(create_all)

        read_started = time.monotonic()
        reading = asyncio.create_task(ensemble.observe(PATH))
        await asyncio.sleep(0.05)  # the reads are under way
        write_started = time.monotonic()
        # One churn tick at 10,000 instances: about 100 znodes.
        await ensemble.apply(PATH, [CreateZnode(f"127.0.0.1:{port}", PAYLOAD) for port in range(1, 101)])
        write_s = time.monotonic() - write_started
        found = await reading
        read_s = time.monotonic() - read_started

        assert set(names) <= set(found) and found[names[0]].data == PAYLOAD
        # One round trip per znode, each behind the queued reads, took as long as the read (2 s of 2 s here).
        assert write_s < read_s / 4, f"the writes took {write_s:.3f} s of a {read_s:.3f} s read"
    finally:
        await ensemble.stop()
