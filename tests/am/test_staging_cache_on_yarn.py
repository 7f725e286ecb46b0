"""The node cache on the real minicluster: a killed container's replacement on the same node
stages from the cache in under a second (the agent's own "model repository staged" log
line says so), and two deployments of one repository on a node share one copy."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List

import httpx
import pytest

from tests.am.conftest import Deployment, submitted
from tests.hadoop.cluster import HadoopCluster, kill_container
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.hadoop]
NODE = "tarn-nm1"
NOT_YET = (httpx.HTTPError, KeyError, IndexError)


def instances(d: Deployment) -> List[Dict]:
    with d.http() as http:
        return http.get("/instances", headers={"Accept": "application/json"}).raise_for_status().json()


def node_dir(cluster: HadoopCluster) -> Path:
    return cluster.conf_dir.parent / "yarn" / NODE


def staging_record(cluster: HadoopCluster, app_id: str, container_id: str) -> Dict:
    """The agent's "model repository staged" log line, from the container's log directory."""
    for path in (node_dir(cluster) / "logs" / app_id / container_id).glob("*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"model repository staged"' in line:
                return json.loads(line)
    raise KeyError(f"no staging record in {container_id}'s logs yet")


def staged_file(cluster: HadoopCluster, app_id: str, container_id: str, relative: str) -> Path:
    matches = list((node_dir(cluster) / "local" / "usercache").glob(
        f"*/appcache/{app_id}/{container_id}/tarn-models/current/{relative}"))
    assert matches, f"{container_id} has no staged {relative}"
    return matches[0]


@pytest.fixture(scope="module")
def first(hadoop_cluster, webhdfs, stack) -> Iterator[Deployment]:
    yield from submitted(hadoop_cluster, webhdfs, stack, extra_args=["--nodes", NODE])


def ready_on_node(d: Deployment, not_id: str = ""):
    rows = [r for r in instances(d) if r["host"] == NODE and r["instance_id"] != not_id and r["ready"]]
    return rows[0] if rows else None


def test_a_killed_containers_replacement_stages_from_the_node_cache_within_a_second(first: Deployment):
    d = first
    victim = wait_for(lambda: ready_on_node(d), 240, "a ready instance", ignore=NOT_YET)["instance_id"]
    initial = wait_for(lambda: staging_record(d.cluster, d.app_id, victim), 30, "the first staging", ignore=NOT_YET)
    assert initial["downloaded"] > 0 and initial["from_cache"] == 0
    assert Path(initial["cache"]).parent.parent.name == "usercache"  # outside YARN's appcache

    kill_container(victim)
    killed_at = time.monotonic()
    fresh = wait_for(lambda: ready_on_node(d, not_id=victim), 240, "a ready replacement on the node", ignore=NOT_YET)
    print(f"\nkilled container -> ready replacement {time.monotonic() - killed_at:.1f} s")
    record = staging_record(d.cluster, d.app_id, fresh["instance_id"])

    print(f"replacement's staging step: {record['duration_s']} s ({record['from_cache']} files from the cache)")
    assert record["downloaded"] == 0 and record["bytes"] == 0
    assert record["from_cache"] == initial["files"] and record["cache"] == initial["cache"]
    assert record["duration_s"] <= 1.0


def test_two_deployments_of_one_repository_on_a_node_share_one_copy(first: Deployment, hadoop_cluster, webhdfs,
                                                                     stack):
    a = wait_for(lambda: ready_on_node(first), 240, "the first deployment ready", ignore=NOT_YET)
    # Its own gateway places: a deployment's HAProxy backend and ZooKeeper path are its alone.
    own = ["--haproxy-backend", "staging_second", "--zk-path", f"/tarn-test/{uuid.uuid4().hex[:8]}/instances"]
    second_run = submitted(hadoop_cluster, webhdfs, stack, extra_args=["--nodes", NODE, *own],
                           hdfs_models=first.hdfs_models)
    second = next(second_run)
    try:
        b = wait_for(lambda: ready_on_node(second), 240, "the second deployment ready", ignore=NOT_YET)
        record = staging_record(hadoop_cluster, second.app_id, b["instance_id"])
        assert record["downloaded"] == 0 and record["from_cache"] == record["files"]

        relative = "add_sub/1/model.py"
        copies = [staged_file(hadoop_cluster, d.app_id, row["instance_id"], relative)
                  for d, row in ((first, a), (second, b))]
        assert copies[0].stat().st_ino == copies[1].stat().st_ino
        assert copies[0].stat().st_nlink >= 3  # the cache's own name and both views
    finally:
        second_run.close()
