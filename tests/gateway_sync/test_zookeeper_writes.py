"""An apply's znode writes go as ZooKeeper multis (one request and one log commit per chunk);
a refused multi leaves nothing done and is settled op by op (real ZooKeeper for the I/O)."""
import asyncio

import pytest
from kazoo.client import KazooClient

from tarn_gateway_sync.plan import CreateZnode, DeleteZnode, ReplaceZnode
from tarn_gateway_sync.zookeeper import MULTI_BYTES, MULTI_OPS, Ensemble, _chunks

PATH = "/instances"
PAYLOAD = b'{"host": "127.0.0.1", "port": 8000, "models": ["identity"]}' * 5  # about a real znode's size


def test_chunks_keep_the_plans_order_within_the_op_and_byte_limits():
    ops = [(f"{PATH}/n{i}", None if i % 3 == 0 else PAYLOAD) for i in range(5_000)]
    chunks = list(_chunks(ops))
    assert [op for chunk in chunks for op in chunk] == ops
    assert all(len(c) <= MULTI_OPS and sum(len(n) + len(d or b"") for n, d in c) <= MULTI_BYTES for c in chunks)
    big = [(f"{PATH}/big", b"x" * (2 * MULTI_BYTES))]  # one op over the limit still goes, alone
    assert list(_chunks(big + ops[:2])) == [big, ops[:2]]


@pytest.mark.integration
@pytest.mark.anyio
async def test_an_apply_larger_than_one_zookeeper_request_lands_whole_in_the_same_session(zk_hosts):
    ensemble = Ensemble(zk_hosts, loop=asyncio.get_running_loop())
    await ensemble.start()
    try:
        session, states = ensemble.session_id, []
        ensemble.client.add_listener(states.append)
        names = [f"127.0.0.1:{10_000 + i}" for i in range(4_000)]  # about 1.3 MB: past jute.maxbuffer in one
        await ensemble.apply(PATH, [CreateZnode(name, PAYLOAD) for name in names])
        found = await ensemble.observe(PATH)
        assert set(found) == set(names) and {z.ephemeral_owner for z in found.values()} == {session}
        assert states == [], f"a request too large dropped the connection: {states}"
    finally:
        await ensemble.stop()


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_refused_multi_is_settled_op_by_op_and_leaves_the_plans_result(zk_hosts):
    other = KazooClient(hosts=zk_hosts)
    await asyncio.to_thread(other.start, 15)
    ensemble = Ensemble(zk_hosts, loop=asyncio.get_running_loop())
    await ensemble.start()
    try:
        client = ensemble.client
        await asyncio.to_thread(client.ensure_path, PATH)
        await asyncio.to_thread(client.create, f"{PATH}/replaced", b"old", ephemeral=True)
        await asyncio.to_thread(client.create, f"{PATH}/leaving", b"old", ephemeral=True)
        # Another session holds a node this plan creates: the multi fails on it.
        await asyncio.to_thread(other.create, f"{PATH}/taken", b"theirs", ephemeral=True)
        plan = [DeleteZnode("gone-already"), DeleteZnode("leaving"), ReplaceZnode("replaced", PAYLOAD),
                CreateZnode("taken", PAYLOAD), CreateZnode("new", PAYLOAD)]
        await ensemble.apply(PATH, plan)
        found = await ensemble.observe(PATH)
        assert set(found) == {"replaced", "taken", "new"}
        assert all(z.data == PAYLOAD and z.ephemeral_owner == ensemble.session_id for z in found.values())
    finally:
        await ensemble.stop()
        await asyncio.to_thread(other.stop)
        await asyncio.to_thread(other.close)
