"""The dashboard in headless chromium against tarn-am's real API (create_app, uvicorn) in
this process: a real FleetView fed with real lifecycle and telemetry events, the real
history points taken from it, the containers as skein reports them. No YARN: the control
loop does not run (skein's client is built but never called), so this checks the page and
the API; test_dashboard_history.py checks the same on the minicluster."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import pytest
import skein
import uvicorn

from tarn_shared import events as ev

from tarn_am.app import ApiContext, create_app
from tarn_am.authz import AuthzClient
from tarn_am.bus import RedisBus
from tarn_am.containers import ObservedContainer
from tarn_am.controller import Controller
from tarn_am.history import History
from tarn_am.history_keeper import take_point
from tarn_am.settings import AmSettings
from tarn_am.view import FleetView, TargetChange
from tarn_am.yarn import YarnAdapter
from tests.am.dashboard_support import CHARTS, chart_data, chromium_page, refreshes, screenshot
from tests.support.polling import wait_for
from tests.support.ports import LOOPBACK, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TOKEN = "page-token"
APP_ID = "application_1700000000000_0001"
C1 = "container_1700000000000_0001_01_000003"


def telemetry(load: float, rate: float) -> ev.TelemetrySample:
    return ev.TelemetrySample(
        deployment="page", app_id=APP_ID, instance_id=C1, interval_s=2.0, load=load,
        models=[ev.ModelSample(name="identity", request_rate_per_s=rate, queue_time_per_request_us=800.0)])


class ServedAm:
    """tarn-am's app on its own event loop in a thread; ``call`` runs a function on that loop,
    so the test changes the view between requests, never during one."""

    def __init__(self, controller: Controller, context: ApiContext, settings: AmSettings) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.controller = controller
        self.history = context.history
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings, context), host=LOOPBACK, port=self.port,
                                                    log_config=None, access_log=False, lifespan="off"))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.server.serve(),), daemon=True)

    def call(self, fn, *args):
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)


@pytest.fixture
def served_am(monkeypatch):
    monkeypatch.setenv("USER", "alice")  # as YARN sets it in the AM container: the logs links name it
    settings = AmSettings(deployment="page", slots=["nvidia-nm1=nm1", "nvidia-nm2=nm2"], token=TOKEN,
                          redis_url="redis://127.0.0.1:1/0", min_instances=1, max_instances=2)
    yarn = YarnAdapter(skein.ApplicationClient("127.0.0.1:1", APP_ID, security=skein.Security.new_credentials()))
    view = FleetView("page")
    controller = Controller(settings, yarn, RedisBus(settings.redis_url, "page", APP_ID), view)
    view.containers = (
        ObservedContainer("nvidia-nm1_0", "nvidia-nm1", "failed", "container_1700000000000_0001_01_000002", "nm1",
                          time.time() - 300, time.time() - 200, "exit code 1", "nm1:8042"),
        ObservedContainer("nvidia-nm1_1", "nvidia-nm1", "running", C1, "nm1", time.time() - 125,
                          node_http_address="nm1:8042"),
    )
    view.apply_lifecycle("1-0", ev.InstanceReady(
        deployment="page", app_id=APP_ID, instance_id=C1, seq=1, models=["identity"],
        endpoints=ev.Endpoints(host="nm1", http_port=8000, grpc_port=8001, metrics_port=8002)), time.time())
    view.apply_lifecycle("1-1", ev.ContainerFailed(
        deployment="page", app_id=APP_ID, container_id="container_1700000000000_0001_01_000002", host="nm1",
        service="nvidia-nm1", exit_status=1, diagnostics="Exception from container-launch: exit code 1",
        ts=time.time() - 200), time.time())
    view.decisions.append(TargetChange(time.time() - 60, "start", 0, 1, "initial instance count"))
    context = ApiContext(controller=controller, authz=AuthzClient(None), history=History(1800, 2.0))
    am = ServedAm(controller, context, settings)
    am.thread.start()
    wait_for(lambda: am.server.started, 30, "tarn-am's API to start", interval_s=0.05)
    try:
        yield am
    finally:
        am.server.should_exit = True
        am.thread.join(timeout=15)


def feed(am: ServedAm, ts: float, load: float, rate: float) -> None:
    def step():
        am.controller.view.apply_telemetry(telemetry(load, rate), ts)
        take_point(am.controller, am.history, ts)
    am.call(step)


def test_the_dashboard_charts_the_history_and_shows_nodes_uptime_restarts_and_logs(served_am: ServedAm):
    am = served_am
    start = time.time() - 20
    for n in range(5):
        feed(am, start + 2 * n, 0.2 + 0.1 * n, 5.0 * n)
    with chromium_page(am.url) as (page, elsewhere, errors):
        page.goto(f"{am.url}/dashboard#token={TOKEN}")
        page.wait_for_function("window.tarnCharts && window.tarnCharts.fleet && "
                               "window.tarnCharts.fleet.data[0].length === 5", timeout=20_000)
        first = chart_data(page)
        assert set(first) == set(CHARTS)
        assert first["fleet"]["labels"] == ["target", "running", "ready"]
        assert first["rate"]["labels"] == [C1] and first["rate"]["ys"][0] == [0.0, 5.0, 10.0, 15.0, 20.0]
        assert first["load"]["ys"][0] == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.6])
        assert first["queue"]["ys"][0] == [0.8] * 5
        assert first["models"]["labels"] == ["identity"]
        screenshot(page, "dashboard-in-process-1.png")

        # Time passes: two more points and a scaling decision; the charts follow.
        before = refreshes(page)
        am.call(lambda: am.controller.view.decisions.append(
            TargetChange(start + 11, "api", 1, 2, "requested through /scale")))
        am.controller.target = replace(am.controller.target, desired=2)
        feed(am, start + 12, 1.5, 60.0)
        feed(am, start + 14, 1.7, 70.0)
        page.wait_for_function("window.tarnCharts.fleet.data[0].length === 7", timeout=20_000)
        second = chart_data(page)
        assert second["rate"]["ys"][0][-2:] == [60.0, 70.0] and second["fleet"]["ys"][0][-1] == 2
        assert second["fleet"]["xs"][:5] == first["fleet"]["xs"] and second["fleet"]["xs"] != first["fleet"]["xs"]
        marked = page.evaluate("window.tarnHistory.decisions.map(d => [d.previous, d.target])")
        assert [1, 2] in marked
        # It refreshes itself: the counter of completed refreshes moves on.
        page.wait_for_function(f"Number(document.querySelector('#updated').dataset.refreshes) > {before}",
                               timeout=10_000)

        nm1 = page.locator("#nodes tbody tr[data-node='nm1']")
        cells = nm1.locator("td").all_inner_texts()
        assert cells[1] == C1 and cells[3].startswith("2m ") and cells[4] == "1"
        assert cells[6].endswith(": Exception from container-launch: exit code 1"), cells  # /api/state's slots
        assert nm1.locator("a").get_attribute("href") == f"http://nm1:8042/node/containerlogs/{C1}/alice"
        free = page.locator("#nodes tbody tr[data-node='nm2'] td").all_inner_texts()
        assert free[1] == "" and free[2] == "idle" and free[6] == ""
        assert page.inner_text("#error") == ""
        path = screenshot(page, "dashboard-in-process-2.png")
        assert path.stat().st_size > 10_000
    assert elsewhere == [], f"the page reached outside tarn-am: {elsewhere}"
    assert errors == [], errors
