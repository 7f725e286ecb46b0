"""YARN node labels for real (issue 17, item 10): a minicluster of its own with labels on,
tarn-nm2 labelled GPU (an exclusive partition the default queue may use), tarn-nm1 not.
`tarn submit --node-label GPU` places Triton containers only on labelled nodes; the AM
container asks for no label (it needs no GPU node, and an exclusive GPU partition should
not hold it), so it runs in the default partition."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.am.conftest import Deployment, submitted
from tests.hadoop.cluster import HadoopCluster, start_cluster, stop_cluster
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
NOT_YET = (httpx.HTTPError, KeyError, AssertionError)
LABELLED, UNLABELLED = "tarn-nm2", "tarn-nm1"


@pytest.fixture(scope="module")
def labelled_cluster(tmp_path_factory) -> Iterator[HadoopCluster]:
    run_dir = tmp_path_factory.mktemp("labelled", numbered=True)
    cluster = start_cluster(run_dir, node_labels=[f"{LABELLED}=GPU"])
    try:
        yield cluster
    finally:
        stop_cluster(run_dir)


@pytest.fixture(scope="module")
def on_gpu_label(labelled_cluster: HadoopCluster, stack) -> Iterator[Deployment]:
    yield from submitted(labelled_cluster, labelled_cluster.webhdfs_client(), stack,
                         extra_args=["--node-label", "GPU"])


def instances(d: Deployment) -> list:
    with d.http() as http:
        return http.get("/instances", headers={"Accept": "application/json"}).raise_for_status().json()


def test_triton_containers_go_only_to_labelled_nodes_and_the_am_to_the_default_partition(on_gpu_label: Deployment):
    d = on_gpu_label
    rows = wait_for(lambda: [r for r in instances(d) if r["ready"]] or None, 300, "a ready instance", ignore=NOT_YET)
    assert [r["host"] for r in rows] == [LABELLED]
    with d.http() as http:
        am_pid = http.get("/healthz").json()["pid"]
    am_dir = Path(os.readlink(f"/proc/{am_pid}/cwd"))
    assert f"/yarn/{UNLABELLED}/" in str(am_dir), am_dir  # NodeManager dirs are yarn/<host>/local/...
    # There is one labelled node: a second instance has nowhere to go, and none lands on tarn-nm1.
    result = d.tarn("scale", "2", "--name", d.name, check=False)
    time.sleep(20)
    hosts = [r["host"] for r in instances(d) if r.get("skein_id")]
    assert hosts == [LABELLED], (hosts, result.stdout + result.stderr)


def test_submit_refuses_a_label_no_running_node_carries(labelled_cluster: HadoopCluster, stack):
    with pytest.raises(BaseException) as refused:
        next(submitted(labelled_cluster, labelled_cluster.webhdfs_client(), stack,
                       extra_args=["--node-label", "TPU", "--haproxy-backend", "tpu_backend", "--zk-path", "/services/tpu"]))
    assert "TPU" in str(refused.value), refused.value
