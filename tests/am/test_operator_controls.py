"""Operators win over the policy, and health that means something (issue 17, items 3 and 8),
on the real minicluster: one AUTOSCALED deployment (min 1, max 2) whose agents read any
queueing as overload (a 10 µs target queue time), so a trickle of requests makes the policy
want a second instance, and whose --authz-url names a port nobody listens on (authz down:
/api/state, tarn status and tarn stop must work regardless). Tests run in file order and
build on each other's state."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Iterator, List

import httpx
import pytest

from tarn_shared import events as ev

from tests.am.conftest import TARN, Deployment, submitted
from tests.hadoop.cluster import HadoopCluster
from tests.support.inference_load import InferenceLoad
from tests.support.polling import wait_for
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
NOT_YET = (httpx.HTTPError, KeyError)
OVERLOADED_AGENTS = {"TARN_NODE_AGENT_TARGET_QUEUE_TIME_US": "10", "TARN_NODE_AGENT_TARGET_PENDING_REQUESTS": "0.05"}


@pytest.fixture(scope="module")
def autoscaled(hadoop_cluster: HadoopCluster, webhdfs, stack) -> Iterator[Deployment]:
    yield from submitted(hadoop_cluster, webhdfs, stack, instances=1, max_instances=2, autoscale=True,
                         agent_env=OVERLOADED_AGENTS, authz_url=f"http://127.0.0.1:{free_port()}",
                         extra_args=["--telemetry-interval", "1"])  # tarn submit passes it to the agents too


def state(d: Deployment) -> dict:
    return d.state()


def healthz(d: Deployment) -> httpx.Response:
    with d.http(token=None) as http:
        return http.get("/healthz", timeout=5)


def requested_since(redis_url: str, deployment: str, since_id: str) -> List[ev.Event]:
    import redis
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(ev.lifecycle_stream(deployment), min=f"({since_id}")
    finally:
        client.close()
    return [e for e in (ev.decode(f) for _, f in entries) if isinstance(e, ev.ContainerRequested)]


def last_entry_id(redis_url: str, deployment: str) -> str:
    import redis
    client = redis.Redis.from_url(redis_url)
    try:
        last = client.xrevrange(ev.lifecycle_stream(deployment), count=1)
    finally:
        client.close()
    return last[0][0].decode() if last else "0-0"


def test_a_count_outside_the_bounds_is_refused_and_a_pause_holds_the_target_across_a_restart(
        autoscaled: Deployment, redis_url):
    d = autoscaled
    ready = wait_for(lambda: (lambda s: s if s["ready"] == 1 else None)(state(d)), 300, "one ready instance",
                     ignore=NOT_YET)
    assert ready["autoscale"] and not ready["autoscale_paused"]
    # authz is down: the state still answers, the models marked unavailable, never shown unfiltered.
    assert "authz unreachable" in ready["unavailable"]["models"] and ready["models"] == []
    assert ready["instances"][0]["models"] == []
    for count, also in (("3", ""), ("0", "tarn stop")):
        refused = d.tarn("scale", count, "--name", d.name, check=False)
        assert refused.returncode == 1 and "bounds 1..2" in refused.stderr and also in refused.stderr, refused.stderr
    assert state(d)["desired"] == 1

    off = d.tarn("autoscale", "off", "--name", d.name, "--reason", "load test").stdout
    assert "autoscale paused since" in off and "load test" in off
    address = state(d)["instances"][0]["address"]
    with InferenceLoad([f"http://{address}"], threads=4):
        wanted = wait_for(lambda: (lambda s: s if "the policy would: 1 → 2" in (s["policy_reason"] or "") else None)(
            state(d)), 90, "the policy wanting a second instance", ignore=NOT_YET)
        since = last_entry_id(redis_url, d.name)
        time.sleep(8)  # several policy decisions (tarn-am decides once per 2 s telemetry interval)
        held = state(d)
        assert (held["desired"], held["running"], held["autoscale"]) == (1, 1, False), held
        assert held["policy_reason"].startswith("autoscaling paused (load test)")
        assert requested_since(redis_url, d.name, since) == []
        status = d.tarn("status", "--name", d.name).stdout
        assert "autoscale paused since" in status and "load test" in status
        assert "models unavailable: authz unreachable" in status

        # The pause is stored: a restarted tarn-am keeps it.
        pid = healthz(d).json()["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: healthz(d).json()["pid"] != pid, 90, "tarn-am restarted", interval_s=0.2, ignore=NOT_YET)
        time.sleep(5)
        after = state(d)
        assert (after["desired"], after["autoscale_paused"], after["autoscale_paused_reason"]) == (1, True, "load test")

        on = d.tarn("autoscale", "on", "--name", d.name).stdout
        assert "autoscale on" in on
        moved = wait_for(lambda: (lambda s: s if s["desired"] == 2 else None)(state(d)), 60,
                         "the resumed policy moving to 2", ignore=NOT_YET)
        assert moved["decisions"][0]["source"] == "autoscale"
    print(f"\n[operator controls] policy wanted 2 while paused: {wanted['policy_reason'][:120]}")
    wait_for(lambda: (lambda s: s if s["running"] == 2 else None)(state(d)), 240, "two running instances",
             ignore=NOT_YET)


def test_healthz_reports_bus_yarn_and_reconcile_and_answers_503_while_redis_is_stopped(autoscaled: Deployment,
                                                                                        stack):
    d = autoscaled
    health = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(healthz(d)), 60, "a healthy tarn-am",
                      ignore=NOT_YET).json()
    assert health["status"] == "ok" and all(health["checks"][k]["ok"] for k in ("bus", "yarn", "reconcile"))
    stack.kill("redis")
    stopped_at = time.monotonic()
    try:
        broken = wait_for(lambda: (lambda r: r if r.status_code == 503 else None)(healthz(d)), 60,
                          "/healthz 503 with Redis stopped", interval_s=0.5, ignore=NOT_YET)
        noticed_s = time.monotonic() - stopped_at
        checks = broken.json()["checks"]
        assert not checks["bus"]["ok"] and checks["yarn"]["ok"] and checks["reconcile"]["ok"], checks
        assert state(d)["running"] == 2  # the API still answers without Redis
    finally:
        stack.start("redis")
    back_at = time.monotonic()
    wait_for(lambda: healthz(d).status_code == 200, 90, "/healthz 200 with Redis back", interval_s=0.5,
             ignore=NOT_YET)
    print(f"\n[healthz] 503 {noticed_s:.1f} s after Redis stopped, 200 {time.monotonic() - back_at:.1f} s after "
          f"it came back")


def test_tarn_stop_on_an_autoscaled_deployment_pauses_drains_and_ends_promptly_releasing_its_record(
        autoscaled: Deployment, redis_url):
    import redis
    d = autoscaled
    before = wait_for(lambda: (lambda s: s if s["running"] == 2 and s["autoscale"] else None)(state(d)), 120,
                      "two running instances, autoscaled", ignore=NOT_YET)
    assert before["min_instances"] == 1
    wait_for(lambda: redis.Redis.from_url(redis_url).hget(ev.deployments_key(), d.name), 60,
             "the record back in the restarted Redis")
    since = last_entry_id(redis_url, d.name)
    started = time.monotonic()
    stopping = subprocess.Popen([TARN, "stop", "--name", d.name, "--timeout", "150"], env=d.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    while stopping.poll() is None:
        try:
            s = state(d)
            seen.append((s["stopping"], s["autoscale"], s["desired"]))
        except NOT_YET:
            pass
        time.sleep(0.3)
    out, err = stopping.communicate()
    stop_s = time.monotonic() - started
    print(f"\n[tarn stop] autoscaled, 2 instances: ended in {stop_s:.1f} s; states seen {sorted(set(seen))}")
    assert stopping.returncode == 0, out + err
    assert f"{d.app_id} stopped" in out and "drain not finished" not in err, err
    assert stop_s < 100, f"tarn stop took {stop_s:.0f} s: it waited for a drain that never ended"
    assert (True, False, 0) in seen and all(desired == 0 for stop, _, desired in seen if stop), seen
    assert requested_since(redis_url, d.name, since) == [], "a container was started during the stop"

    client = redis.Redis.from_url(redis_url)
    assert client.hget(ev.deployments_key(), d.name) is None
    announced = [ev.decode(f) for _, f in client.xrange(ev.deployments_stream())]
    last = [r for r in announced if getattr(r, "deployment", None) == d.name][-1]
    assert last.removed and last.app_id == d.app_id
    yarn = d.cluster.yarn()
    final = wait_for(lambda: (lambda r: r if str(r.state) in ("FINISHED", "FAILED", "KILLED") else None)(
        yarn.application_report(d.app_id)), 60, "YARN ending the application")
    assert str(final.state) == "FINISHED" and str(final.final_status) == "SUCCEEDED", final
