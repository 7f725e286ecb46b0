"""A container request YARN cannot fill, on the minicluster (issue 17, item 5): another
application holds tarn-nm1's two GPUs, TARN asks for one per instance (--tp 1). The request on
tarn-nm1 is reported blocked after --blocked-timeout, with the fleet's one instance re-placed
on tarn-nm2, and at a target of 2 `tarn status` names tarn-nm1 blocked while tarn-nm2 serves."""
from __future__ import annotations

import json
import time
from typing import Iterator

import httpx
import pytest

from tests.am.conftest import Deployment, submitted
from tests.hadoop.cluster import HadoopCluster
from tests.support.polling import wait_for

import skein

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
GPUS_PER_NODE = 2  # yarn.nodemanager.resource-type.yarn.io/gpu in minicluster-site.xml
BLOCKED_TIMEOUT_S = 8
NOT_YET = (httpx.HTTPError, KeyError, AssertionError, ValueError)


@pytest.fixture(scope="module")
def nm1_gpus_held(hadoop_cluster: HadoopCluster) -> Iterator[str]:
    """Another application's container holding every GPU of tarn-nm1."""
    client = hadoop_cluster.yarn()
    spec = skein.ApplicationSpec(
        name="tarn-gpu-holder", queue="default",
        master=skein.Master(resources=skein.Resources(memory=256, vcores=1), script="exec sleep 900"),
        services={"hold": skein.Service(resources=skein.Resources(memory=64, vcores=1, gpus=GPUS_PER_NODE),
                                        script="exec sleep 900", instances=1, nodes=["tarn-nm1"],
                                        relax_locality=False)})
    app_id = client.submit(spec)
    try:
        app = client.connect(app_id)  # waits until its application master runs
        wait_for(lambda: app.get_containers(services=["hold"], states=["RUNNING"]), 120,
                 "the holder's container on tarn-nm1")
        yield app_id
    finally:
        hadoop_cluster.kill_application(app_id)


@pytest.fixture(scope="module")
def deployment(nm1_gpus_held, hadoop_cluster: HadoopCluster, webhdfs, stack) -> Iterator[Deployment]:
    yield from submitted(hadoop_cluster, webhdfs, stack, instances=1, max_instances=2,
                         extra_args=["--tp", "1", "--blocked-timeout", str(BLOCKED_TIMEOUT_S)])


def slots(d: Deployment) -> dict:
    return {s["node"]: s for s in d.state()["slots"]}


def test_a_request_on_a_node_whose_gpus_are_held_is_re_placed_and_reported_blocked(deployment: Deployment):
    d = deployment
    started = time.monotonic()
    # Target 1: the first slot tried is tarn-nm1 (stable order); YARN never fills it.
    placed = wait_for(lambda: (lambda s: s if s["tarn-nm2"]["state"] == "serving" else None)(slots(d)),
                      300, "the instance re-placed and serving on tarn-nm2", ignore=NOT_YET)
    assert placed["tarn-nm1"]["state"] == "blocked", placed
    assert "YARN has not allocated" in placed["tarn-nm1"]["blocked_reason"], placed
    state = d.state()
    assert state["running"] == 1 and state["ready"] == 1, state
    requests = [e["text"] for e in reversed(state["events"]) if e["kind"] == "container.requested"]
    assert [r.rsplit(" ", 1)[1] for r in requests] == ["tarn-nm1", "tarn-nm2"], requests
    reached_s = time.monotonic() - started

    # Target 2: tarn-nm1's request waits, is not counted, and `tarn status` names it.
    d.tarn("scale", "--name", d.name, "2")
    text = wait_for(lambda: (lambda out: out if "blocked 1:" in out else None)(
        d.tarn("status", "--name", d.name).stdout), 60 + BLOCKED_TIMEOUT_S, "tarn status reporting one blocked")
    assert "blocked on tarn-nm1: YARN has not allocated the container requested on tarn-nm1" in text, text
    document = json.loads(d.tarn("status", "--name", d.name, "--json").stdout)
    assert document["running"] == 1 and document["ready"] == 1, document
    assert {s["node"]: s["state"] for s in document["slots"]} == {"tarn-nm1": "blocked", "tarn-nm2": "serving"}
    print(f"re-placed and serving on tarn-nm2 {reached_s:.0f} s after submit returned "
          f"(blocked timeout {BLOCKED_TIMEOUT_S} s)")
