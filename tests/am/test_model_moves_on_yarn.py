"""A hot model moves onto a second instance and a cold one unloads, end to end on the
minicluster (issue 16, item 9): the real tarn-am in ``--placement per-model`` deciding from the
real node-agents' per-model telemetry of the real tritonserver, every request through a real
HAProxy 2.6 whose model slot backends the real gateway-sync keeps.

Three python-backend models (tests/ballast_model) hold a resident ballast, so the agents'
measured footprints (RSS growth on load) match the declared ones and an instance's capacity
(``--container-memory``, no GPU here) holds two of them but not three; two instances start.
``hot`` sleeps 40 ms per request, one at a time, against a 20 ms queue target: three clients
queue it ~80 ms, so per-model scaling asks for its second copy in one decision. ``steady``
gets a trickle and stays at one copy. ``cold`` (min 0) gets nothing: after its stable window
(60 s) of no demand it is unloaded. None of the requests may fail, the whole run.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, Optional

import httpx
import pytest

from tarn_shared import events as ev
from tests.am.conftest import Deployment, holders, submitted
from tests.gateway_sync.support import Replica, settings_for
from tests.hadoop.cluster import HadoopCluster
from tests.support.inference_load import InferenceLoad
from tests.support.polling import wait_for
from tests.support.model_haproxy import ModelHaproxy

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
MODEL_PY = Path(__file__).resolve().parents[1] / "ballast_model" / "model.py"
MIB = 1 << 20
CAPACITY_MIB = 560  # two of the footprints below fit, three do not
# name: (ballast MiB, delay ms); declared memory = ballast + ~40 MiB for the python stub
MODELS = {"hot": (150, 40), "steady": (200, 0), "cold": (180, 0)}
MODELS_YAML = """models:
  hot: {min: 1, max: 2, memory: 190MiB, queue_ms: 20}
  steady: {min: 1, max: 1, memory: 240MiB}
  cold: {min: 0, max: 1, memory: 220MiB}
"""
HOT_TARGET_US = 20_000
CONFIG = """name: "%s"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
parameters: { key: "delay_ms", value: { string_value: "%d" } }
parameters: { key: "ballast_mb", value: { string_value: "%d" } }
instance_group [ { kind: KIND_CPU, count: 1 } ]
"""
NOT_YET = (httpx.HTTPError, KeyError, ValueError)


def repository(root: Path) -> Path:
    for name, (ballast_mb, delay_ms) in MODELS.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CONFIG % (name, delay_ms, ballast_mb))
        (root / name / "1" / "model.py").write_text(MODEL_PY.read_text())
    return root


@pytest.fixture
def moving(hadoop_cluster: HadoopCluster, webhdfs, stack, zk_hosts, tmp_path) -> Iterator[tuple]:
    assert len(hadoop_cluster.nodemanagers) >= 2, "the minicluster runs two NodeManagers"
    backend = f"moves{uuid.uuid4().hex[:6]}"
    haproxy = ModelHaproxy(tmp_path, [backend], slots=4).start()
    (tmp_path / "models.yaml").write_text(MODELS_YAML)
    extra = ["--placement", "per-model", "--models", str(tmp_path / "models.yaml"),
             "--container-memory", str(CAPACITY_MIB), "--max-instances", "2", "--telemetry-interval", "1",
             "--haproxy-backend", backend, "--zk-ensemble", zk_hosts, "--start-timeout", "240"]
    deployments = submitted(hadoop_cluster, webhdfs, stack, instances=2, max_instances=2, autoscale=True,
                            extra_args=extra, models_dir=repository(tmp_path / "repository"))
    replica = None
    try:
        d = next(deployments)
        replica = Replica(settings_for(stack, zk_hosts, replica=f"gs-{d.name}", deployment=d.name,
                                       haproxy_sockets=[haproxy.socket], allowed_backends=[backend],
                                       reconcile_interval_s=5.0), tmp_path / "gateway-sync.log")
        yield d, haproxy, tmp_path / "gateway-sync.log"
    finally:
        if replica is not None:
            replica.stop()
        deployments.close()
        haproxy.stop()


def first_pressure_seen(stack, d: Deployment, since: float) -> Optional[float]:
    """When the first sample with hot's queue over its target after ``since`` reached Redis."""
    import redis
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        for entry_id, fields in client.xrange(ev.telemetry_stream(d.name), min=f"{int(since * 1000)}-0"):
            event = ev.decode(fields)
            if isinstance(event, ev.TelemetrySample) and any(
                    m.name == "hot" and m.queue_time_per_request_us > HOT_TARGET_US for m in event.models):
                return int(entry_id.decode().split("-")[0]) / 1000.0
        return None
    finally:
        client.close()


def hot_served_by(address: str) -> int:
    """Hot's successful inferences on one instance, by Triton's own statistics."""
    stats = httpx.get(f"http://{address}/v2/models/hot/stats", timeout=5, trust_env=False).json()
    return sum(m["inference_stats"]["success"]["count"] for m in stats["model_stats"])


def test_load_skew_gives_the_hot_model_a_second_instance_and_the_cold_one_unloads_without_a_failed_request(
        moving, stack):
    d, haproxy, gs_log = moving
    started = time.monotonic()

    def models_table() -> Dict[str, dict]:
        with d.http() as http:
            return {m["name"]: m for m in http.get("/api/models").raise_for_status().json()["models"]}

    def placed():
        state = d.state()
        held = holders(state)
        ok = (len(state["instances"]) == 2 and all(len(held.get(m, [])) == 1 for m in MODELS)
              and all(len(haproxy.serving(m)) == 1 for m in MODELS))
        # The agents' measurements come with their next telemetry sample, after the ready announcement.
        return state if ok and all(row["memory_source"] == "measured" for row in models_table().values()) else None

    state = wait_for(placed, 300, message=lambda: f"three models placed, routed and measured: "
                                                  f"{d.state()['model_placement']}\n{models_table()}\n"
                                                  f"{haproxy.dump()}", ignore=NOT_YET)
    placed_s = time.monotonic() - started
    footprints = {m: row["memory_bytes"] for m, row in models_table().items() if m in MODELS}
    sizes = sorted(footprints.values())
    # The premise, from the agents' measurements: an instance holds two of the models, never three.
    assert sizes[1] + sizes[2] <= CAPACITY_MIB * MIB < sum(sizes), footprints
    first_hot = holders(state)["hot"]
    address = {r["instance_id"]: r["address"] for r in state["instances"]}

    steady = InferenceLoad([haproxy.url()], model="steady", interval_s=0.2).start()
    hot = InferenceLoad([haproxy.url()], model="hot", threads=3)
    try:
        time.sleep(3)
        load_at = time.time()
        hot.start()

        def two_hot():
            state = d.state()
            return state if len(holders(state).get("hot", [])) == 2 and len(haproxy.serving("hot")) == 2 else None

        state = wait_for(two_hot, 120, message=lambda: f"no second hot copy: {d.state()['model_placement']}\n"
                                                       f"{haproxy.dump()}", ignore=NOT_YET)
        moved_at = time.time()
        second = next(i for i in holders(state)["hot"] if i not in first_hot)
        address.update({r["instance_id"]: r["address"] for r in state["instances"]})
        wait_for(lambda: hot_served_by(address[second]) > 20, 60, "the second copy serving hot through HAProxy",
                 ignore=NOT_YET)
        serving_at = time.time()

        def cold_gone():
            state = d.state()
            return state if "cold" not in holders(state) and not haproxy.serving("cold") else None

        state = wait_for(cold_gone, 150, message=lambda: f"cold still loaded: {d.state()['model_placement']}\n"
                                                         f"{haproxy.dump()}", ignore=NOT_YET)
        cold_at = time.time()
        time.sleep(3)  # requests keep flowing after the unload
    finally:
        hot.stop()
        steady.stop()
    seen_at = first_pressure_seen(stack, d, load_at)
    want = {m["name"]: m for m in d.state()["model_placement"]}
    sent = len(hot.outcomes) + len(steady.outcomes)
    failed = hot.failed + steady.failed
    print(f"\n[model moves on YARN] placed and routed {placed_s:.1f} s after submit; footprints MiB "
          f"{ {m: round(b / MIB) for m, b in footprints.items()} } of {CAPACITY_MIB}; load on hot -> pressure seen "
          f"{(seen_at or load_at) - load_at:.1f} s, -> second copy ready and routed {moved_at - load_at:.1f} s, "
          f"serving {serving_at - load_at:.1f} s (pressure seen -> second copy serving "
          f"{serving_at - (seen_at or load_at):.1f} s); cold unloaded {cold_at - load_at:.1f} s after the load "
          f"started; requests hot {len(hot.outcomes)} steady {len(steady.outcomes)}, failed {len(failed)}; "
          f"test {time.monotonic() - started:.0f} s after submit; hot: {want['hot']['wanted_reason']}")
    assert seen_at is not None, "no telemetry sample showed hot's queue over its target"
    assert want["hot"]["wanted"] == 2 and want["cold"]["wanted"] == 0 and want["steady"]["wanted"] == 1, want
    assert want["cold"]["held"] == [] and len(holders(d.state()).get("steady", [])) == 1, want
    assert hot.ok > 100 and steady.ok > 20, (hot.summary(), steady.summary())
    assert sent > 0 and failed == [], failed[:10]
