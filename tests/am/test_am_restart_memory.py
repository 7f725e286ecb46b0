"""A tarn-am restart in the middle of a drain, on the minicluster (issue 17, item 6): what the
reconcile decision remembers is in Redis (fleet_memory), the new tarn-am resumes it, and the
drain ends as a drain: the drained container released, no failure counted, the other untouched."""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Iterator

import httpx
import pytest
import redis

from tests.am.conftest import Deployment, submitted
from tests.hadoop.cluster import HadoopCluster
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
NOT_YET = (httpx.HTTPError, KeyError, ValueError)


@pytest.fixture(scope="module")
def two_instances(hadoop_cluster: HadoopCluster, webhdfs, stack) -> Iterator[Deployment]:
    yield from submitted(hadoop_cluster, webhdfs, stack, instances=1, max_instances=2)


def instances(d: Deployment) -> list:
    with d.http() as http:
        return http.get("/instances", headers={"Accept": "application/json"}).raise_for_status().json()


def memory(stack, d: Deployment) -> dict:
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        raw = client.get(f"tarn:{d.name}:fleet-memory")
    finally:
        client.close()
    app_id, _, text = (raw or b"").decode().partition(" ")
    assert app_id == d.app_id, raw
    return json.loads(text)


def test_a_drain_interrupted_by_a_tarn_am_restart_completes_and_counts_no_failure(two_instances: Deployment, stack):
    d = two_instances
    d.tarn("scale", "2", "--name", d.name)
    rows = wait_for(lambda: (lambda r: r if sum(x["ready"] for x in r) == 2 else None)(instances(d)), 300,
                    "two ready instances", ignore=NOT_YET)
    d.tarn("scale", "1", "--name", d.name)
    drains = wait_for(lambda: memory(stack, d)["drains"] or None, 60, "the drain in the fleet memory",
                      interval_s=0.1, ignore=(AssertionError, ValueError))
    (drained,) = [r["instance_id"] for r in rows if r["instance_id"] in {x["instance_id"] for x in drains.values()}]
    with d.http() as http:
        pid = http.get("/healthz").json()["pid"]
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def done():
        state = d.state()
        return state if state["running"] == 1 and state["ready"] == 1 else None

    state = wait_for(done, 180, "the drain finished by the restarted tarn-am", interval_s=0.5, ignore=NOT_YET)
    print(f"\ntarn-am SIGKILLed mid-drain -> drain completed {time.monotonic() - killed_at:.1f} s later")
    left = [r["instance_id"] for r in instances(d)]
    assert left == [i for i in (r["instance_id"] for r in rows) if i != drained]  # the other one, untouched
    kinds = [e["kind"] for e in state["events"]]
    assert "container.failed" not in kinds, state["events"]
    assert memory(stack, d)["failures"] == {} and memory(stack, d)["drains"] == {}
    assert state["desired"] == 1
