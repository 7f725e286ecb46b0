"""Health that means something, and an API that degrades (issue 17, item 8), in this process:
tarn-am's real app (create_app, uvicorn) over a real FleetView, its real bus consumers on the
stack's Redis, a real AuthzClient aimed at a port nobody listens on (authz down) and skein's
real client aimed at no application master (YARN unreachable). The minicluster side (Redis
stopped under a running tarn-am) is in test_operator_controls.py."""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
import skein

from tarn_shared import events as ev

from tarn_am.app import ApiContext
from tarn_am.authz import AuthzClient
from tarn_am.bus import RedisBus
from tarn_am.containers import ObservedContainer
from tarn_am.controller import Controller
from tarn_am.history import History
from tarn_am.history_keeper import take_point
from tarn_am.settings import AmSettings
from tarn_am.target import paused, stopping
from tarn_am.view import FleetView
from tests.am.dashboard_support import chromium_page, refreshes, screenshot
from tests.am.test_dashboard_page import ServedAm
from tests.support.polling import wait_for
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TOKEN = "degraded-token"
APP_ID = "application_1700000000000_0002"
C1 = "container_1700000000000_0002_01_000002"


@pytest.fixture
def degraded_am(redis_url):
    name = f"deg{uuid.uuid4().hex[:8]}"
    authz_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: authz is down
    settings = AmSettings(deployment=name, slots=["nvidia-nm1=nm1"], token=TOKEN, redis_url=redis_url,
                          min_instances=1, max_instances=1, authz_url=authz_url)
    yarn = skein.ApplicationClient("127.0.0.1:1", APP_ID, security=skein.Security.new_credentials())
    from tarn_am.yarn import YarnAdapter
    view = FleetView(name)
    bus = RedisBus(redis_url, name, APP_ID)
    controller = Controller(settings, YarnAdapter(yarn), bus, view)
    view.containers = (ObservedContainer("nvidia-nm1_0", "nvidia-nm1", "running", C1, "nm1", time.time() - 60,
                                         node_http_address="nm1:8042"),)
    view.apply_lifecycle("1-0", ev.InstanceReady(
        deployment=name, app_id=APP_ID, instance_id=C1, seq=1, models=["identity"],
        endpoints=ev.Endpoints(host="nm1", http_port=8000, grpc_port=8001, metrics_port=8002)), time.time())
    view.apply_telemetry(ev.TelemetrySample(deployment=name, app_id=APP_ID, instance_id=C1, interval_s=2.0,
                                            load=0.3, models=[ev.ModelSample(name="identity", request_rate_per_s=4)]),
                         time.time())
    history = History(1800, 2.0)
    take_point(controller, history, time.time())
    context = ApiContext(controller=controller, authz=AuthzClient(authz_url, 0.5), history=history)
    am = ServedAm(controller, context, settings)
    am.thread.start()
    wait_for(lambda: am.server.started, 30, "tarn-am's API to start", interval_s=0.05)
    stop = asyncio.Event()
    bus.consumers_for(view)
    consumers = asyncio.run_coroutine_threadsafe(bus.run_consumers(stop), am.loop)
    try:
        yield am
    finally:
        am.loop.call_soon_threadsafe(stop.set)
        consumers.result(timeout=15)
        am.server.should_exit = True
        am.thread.join(timeout=15)


def api(am: ServedAm) -> httpx.Client:
    return httpx.Client(base_url=am.url, headers={"X-TARN-Token": TOKEN}, timeout=10, trust_env=False)


def test_with_authz_down_the_state_and_the_dashboard_answer_mark_the_models_unavailable_and_show_a_pause(
        degraded_am):
    am = degraded_am
    with api(am) as http:
        state = http.get("/api/state", headers={"X-TARN-User": "alice"})
        assert state.status_code == 200, state.text
        body = state.json()
        assert "authz unreachable" in body["unavailable"]["models"] and body["models"] == []
        assert [(i["instance_id"], i["models"]) for i in body["instances"]] == [(C1, [])]  # never unfiltered
        assert (body["desired"], body["running"], body["autoscale"]) == (1, 1, True)
        history = http.get("/api/history").json()
        assert history["models"] == {} and "authz unreachable" in history["unavailable"]["models"]
        assert len(history["ts"]) == 1
        # Wholly authz's answers: these still say authz is down.
        assert http.get("/models").status_code == 503
        assert http.get("/authorize", params={"model": "identity", "action": "infer"}).status_code == 503
    with chromium_page(am.url) as (page, elsewhere, errors):
        page.goto(f"{am.url}/dashboard#token={TOKEN}&user=alice")
        page.wait_for_selector(f"#instances tbody tr[data-instance='{C1}']", timeout=20_000)
        page.wait_for_function("!document.querySelector('#models-unavailable').hidden", timeout=10_000)
        assert "authz unreachable" in page.inner_text("#models-unavailable")
        before = refreshes(page)  # past a refresh: incremental history answers keep the mark too
        page.wait_for_function(f"Number(document.querySelector('#updated').dataset.refreshes) > {before}",
                               timeout=10_000)
        assert page.is_visible("#models-chart-unavailable")
        assert "authz unreachable" in page.inner_text("#models-chart-unavailable")
        assert page.locator(f"#instances tbody tr[data-instance='{C1}'] td").all_inner_texts()[-1] == "unavailable"
        assert page.inner_text("#autoscale") == "on"
        before = refreshes(page)
        page.wait_for_function(f"Number(document.querySelector('#updated').dataset.refreshes) > {before}",
                               timeout=10_000)
        assert page.inner_text("#error") == ""
        # Paused by an operator: the card and the banner say so, and why.
        am.call(lambda: setattr(am.controller, "target", paused(am.controller.target, "maintenance", time.time())))
        page.wait_for_function("document.querySelector('#autoscale').innerText === 'paused'", timeout=10_000)
        assert page.is_visible("#autoscale-paused") and "maintenance" in page.inner_text("#autoscale-paused")
        screenshot(page, "dashboard-authz-down.png")
    assert errors == [] and elsewhere == []


def test_healthz_answers_503_naming_the_yarn_connection_while_skein_is_unreachable(degraded_am):
    am = degraded_am

    def bus_ok():
        with api(am) as http:
            return http.get("/healthz").json()["checks"]["bus"]["ok"]

    wait_for(bus_ok, 30, "tarn-am's consumers on the stack's Redis")
    asyncio.run_coroutine_threadsafe(am.controller.round(), am.loop).result(timeout=30)
    with api(am) as http:
        health = http.get("/healthz")
    body = health.json()
    assert health.status_code == 503 and body["status"] == "unhealthy", body
    checks = body["checks"]
    assert checks["bus"]["ok"] and checks["reconcile"]["ok"], checks
    assert not checks["yarn"]["ok"] and "skein application master unreachable" in checks["yarn"]["detail"], checks
    assert body["pid"] > 0 and body["loop_rounds"] == 1


def test_refused_operator_requests_answer_422_or_409_naming_why_before_anything_is_stored(degraded_am):
    am = degraded_am  # skein unreachable: a request that got as far as storing would answer 503
    with api(am) as http:
        out = http.post("/scale", json={"count": 2})
        assert out.status_code == 422 and "bounds 1..1" in out.json()["detail"]
        assert http.post("/scale", json={"count": 1}).status_code == 503  # inside: it tries to store it
        am.call(lambda: setattr(am.controller, "target", stopping(am.controller.target, "tarn stop", time.time())))
        busy = http.post("/scale", json={"count": 1})
        assert busy.status_code == 409 and "stopping" in busy.json()["detail"]
        assert http.post("/autoscale", json={"enabled": True}).status_code == 409
        copies = http.post("/model-copies", json={"model": "identity", "copies": 2})  # not --placement per-model
        assert copies.status_code == 409 and "per-model" in copies.json()["detail"], copies.text
        assert http.post("/scale", json={"count": 1}, headers={"X-TARN-Token": "wrong"}).status_code == 401
