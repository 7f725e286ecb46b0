"""A Redis outage loses nothing (issue 17, item 1, tarn-am's side): two real instances on the
minicluster under a steady load, Redis killed for 60 s and started again EMPTY on the same port.
tarn-am must not read its own loss of Redis as the death of its instances: the same containers
before and after, none released, no request failed, and the fleet view whole again soon after.

The load goes straight to the two instances' HTTP endpoints (not through HAProxy and
gateway-sync: that path is gateway-sync's half of the item, tested on its side).
"""
from __future__ import annotations

import time
from typing import Iterator, List

import httpx
import pytest

from tests.am.conftest import Deployment, submitted
from tests.hadoop.cluster import HadoopCluster
from tests.support.inference_load import InferenceLoad
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
NOT_YET = (httpx.HTTPError, KeyError)
OUTAGE_S = 60.0
AFTER_S = 30.0  # longer than the 20 s heartbeat timeout: the old rule would have fired by now


@pytest.fixture(scope="module")
def two_instances(hadoop_cluster: HadoopCluster, webhdfs, stack) -> Iterator[Deployment]:
    yield from submitted(hadoop_cluster, webhdfs, stack, instances=2)


def snapshot_in_new_redis(stack, d: Deployment, expected: List[str]):
    """The AM re-seeded the empty Redis: a snapshot there lists both instances, ready."""
    import redis

    from tarn_shared import events as ev
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        for _, fields in reversed(client.xrange(ev.lifecycle_stream(d.name))):
            event = ev.decode(fields)
            if isinstance(event, ev.MembershipSnapshot):
                ready = sorted(m.instance_id for m in event.members if m.state is ev.InstanceState.READY)
                return ready == expected
        return False
    finally:
        client.close()


def instances(d: Deployment) -> List[dict]:
    with d.http() as http:
        return http.get("/instances", headers={"Accept": "application/json"}).raise_for_status().json()


def both_ready(d: Deployment):
    rows = instances(d)
    state = d.state()
    ready = [r for r in rows if r["ready"]]
    return rows if len(ready) == 2 and state["ready"] == 2 and state["running"] == 2 else None


def test_redis_killed_60_s_and_restarted_empty_loses_no_container_and_no_request(two_instances: Deployment, stack):
    d = two_instances
    rows = wait_for(lambda: both_ready(d), 300, "two ready instances", ignore=NOT_YET)
    before = sorted((r["instance_id"], r["skein_id"]) for r in rows)
    addresses = [r["address"] for r in rows]
    hosts = {r["host"] for r in rows}
    assert len(hosts) == 2, rows

    with InferenceLoad([f"http://{a}" for a in addresses], interval_s=0.05) as load:
        time.sleep(5)
        stack.kill("redis")
        killed_at = time.monotonic()
        time.sleep(OUTAGE_S)
        stack.start("redis")  # no persistence: it comes back empty, on the same port
        back_at = time.monotonic()
        rows = wait_for(lambda: both_ready(d), 60, "both instances ready in tarn-am's view", interval_s=0.1,
                        ignore=NOT_YET)
        converged_s = time.monotonic() - back_at
        wait_for(lambda: snapshot_in_new_redis(stack, d, [i for i, _ in before]), 60,
                 "a snapshot of both in the new Redis", interval_s=0.1, ignore=(Exception,))
        reseeded_s = time.monotonic() - back_at
        time.sleep(AFTER_S)
        after = sorted((r["instance_id"], r["skein_id"]) for r in instances(d))
        state = d.state()

    print(f"\n[redis outage] killed {back_at - killed_at:.1f} s, restarted empty; fleet view: both ready "
          f"{converged_s:.2f} s after Redis came back, snapshot in the new Redis {reseeded_s:.2f} s; "
          f"containers before {before} after {after}; requests {load.summary()}")
    assert after == before, "a container was lost or replaced"
    assert state["running"] == 2 and state["ready"] == 2
    kinds = [e["kind"] for e in state["events"]]
    assert "container.failed" not in kinds and "container.completed" not in kinds, kinds
    assert load.failed == [], load.failed[:10]
    assert load.ok > 0
    assert converged_s < 30.0 and reseeded_s < 30.0
