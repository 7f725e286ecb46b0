"""What operators see of per-model placement, in this process (issue 16, item 7): tarn-am's
real app (create_app, uvicorn) over a real FleetView fed with real lifecycle and telemetry
events, its real placement round sending its real commands to the stack's Redis, skein's real
client aimed at no application master (as a new application attempt whose store cannot help).
The previous tarn-am's copies wanted are in Redis; the restarted controller keeps them, and
GET /api/models, /metrics (promtool), `tarn models`' document and the dashboard's matrix say
what it placed. The skein side of the store is checked on the minicluster
(test_model_placement_on_yarn.py)."""
from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import httpx
import pytest
import redis
import skein

from tarn_shared import events as ev

from tarn_am.app import ApiContext
from tarn_am.authz import AuthzClient
from tarn_am.bus import RedisBus
from tarn_am.cli.models_view import models_document, render_models
from tarn_am.containers import ObservedContainer
from tarn_am.controller import Controller
from tarn_am.model_copies import ModelPlan, ModelTarget
from tarn_am.model_copies_store import CopiesStore, StoredCopies
from tarn_am.settings import AmSettings
from tarn_am.view import FleetView
from tarn_am.yarn import YarnAdapter
from tests.am.dashboard_support import chromium_page, screenshot
from tests.am.test_dashboard_page import ServedAm
from tests.support.polling import wait_for
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TOKEN = "models-token"
APP_ID = "application_1700000000000_0016"
C1, C2 = "container_1700000000000_0016_01_000002", "container_1700000000000_0016_01_000003"
MIB = 1 << 20
PLAN = ModelPlan(models={"identity": ModelTarget(min_copies=1, max_copies=2, memory_bytes=64 * MIB),
                         "add_sub": ModelTarget(min_copies=1, max_copies=2, memory_bytes=64 * MIB)})


def unreachable_skein() -> YarnAdapter:
    return YarnAdapter(skein.ApplicationClient("127.0.0.1:1", APP_ID, security=skein.Security.new_credentials()))


def redis_client(stack) -> redis.Redis:
    return redis.Redis.from_url(stack.env["REDIS_URL"])


def settings_for(name: str, stack) -> AmSettings:
    return AmSettings(deployment=name, slots=["nvidia-nm1=nm1", "nvidia-nm2=nm2"], token=TOKEN,
                      redis_url=stack.env["REDIS_URL"], min_instances=2, max_instances=2, placement="per-model",
                      model_plan=PLAN)


def telemetry(name: str, instance_id: str, states, models=()) -> ev.TelemetrySample:
    return ev.TelemetrySample(deployment=name, app_id=APP_ID, instance_id=instance_id, interval_s=2.0,
                              models=list(models), model_states=list(states))


@pytest.fixture(scope="module")
def placed_am(stack):
    name = f"mod{uuid.uuid4().hex[:8]}"
    client = redis_client(stack)
    # What the previous tarn-am of this application left: an operator wanted two copies of identity.
    client.set(f"tarn:{name}:model-copies", f"{APP_ID} {StoredCopies(copies={'identity': 2}).model_dump_json()}")
    settings = settings_for(name, stack)
    view = FleetView(name)
    controller = Controller(settings, unreachable_skein(), RedisBus(settings.redis_url, name, APP_ID), view)
    now = time.time()
    view.containers = tuple(ObservedContainer(f"nvidia-nm{n}_0", f"nvidia-nm{n}", "running", c, f"nm{n}", now - 60,
                                              node_http_address=f"nm{n}:8042") for n, c in ((1, C1), (2, C2)))
    for n, c in ((1, C1), (2, C2)):
        view.apply_lifecycle(f"{n}-0", ev.InstanceReady(
            deployment=name, app_id=APP_ID, instance_id=c, seq=1, models=["identity", "add_sub"] if n == 1 else [],
            endpoints=ev.Endpoints(host=f"nm{n}", http_port=8000, grpc_port=8001, metrics_port=8002)), now)
    ready = ev.ModelLoadState.READY
    view.apply_telemetry(telemetry(name, C1, [
        ev.ModelOnInstance(name="identity", state=ready, memory_bytes=50 * MIB, memory_source="rss", load_time_s=1.2),
        ev.ModelOnInstance(name="add_sub", state=ready, memory_bytes=30 * MIB, memory_source="rss", load_time_s=0.4)],
        [ev.ModelSample(name="identity", request_rate_per_s=20, queue_time_per_request_us=1800.0),
         ev.ModelSample(name="add_sub", request_rate_per_s=1, queue_time_per_request_us=40.0)]), now)
    view.apply_telemetry(telemetry(name, C2, []), now)
    context = ApiContext(controller=controller, authz=AuthzClient(None))
    am = ServedAm(controller, context, settings)
    am.name, am.context, am.redis = name, context, client
    am.thread.start()
    wait_for(lambda: am.server.started, 30, "tarn-am's API to start", interval_s=0.05)
    # The restarted controller's first placement round, on the API's loop (it reads what the API reads).
    asyncio.run_coroutine_threadsafe(controller._autoscale(time.time()), am.loop).result(timeout=30)
    try:
        yield am
    finally:
        am.server.should_exit = True
        am.thread.join(timeout=15)
        client.delete(f"tarn:{name}:model-copies", ev.commands_stream(name, C1), ev.commands_stream(name, C2))
        client.close()


def api(am: ServedAm) -> httpx.Client:
    return httpx.Client(base_url=am.url, headers={"X-TARN-Token": TOKEN}, timeout=10, trust_env=False)


def test_a_restarted_controller_keeps_the_operators_copies_and_places_the_second_copy(placed_am):
    am = placed_am
    assert am.controller.policy.models.wanted == {"identity": 2}
    entries = am.redis.xrange(ev.commands_stream(am.name, C2))
    commands = [ev.decode(fields) for _, fields in entries]
    assert [(type(c).__name__, c.model) for c in commands] == [("LoadModelCommand", "identity")]
    assert am.redis.xrange(ev.commands_stream(am.name, C1)) == []  # it holds both already


def test_api_models_shows_copies_wanted_and_loaded_where_memory_queue_and_load_time(placed_am):
    with api(placed_am) as http:
        answer = http.get("/api/models")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert http.get("/api/models", headers={"X-TARN-Token": "wrong"}).status_code == 401
    assert body["placement"] == "per-model" and body["note"] is None and body["unavailable"] == {}
    rows = {m["name"]: m for m in body["models"]}
    identity, add_sub = rows["identity"], rows["add_sub"]
    assert (identity["wanted"], identity["loaded"], identity["loading"], identity["instances"]) == (2, 1, 1, [C1, C2])
    assert {i: c["state"] for i, c in identity["cells"].items()} == {C1: "ready", C2: "load commanded"}
    assert (identity["memory_bytes"], identity["memory_source"], identity["queue_time_us"], identity["load_time_s"]) \
        == (50 * MIB, "measured", 1800.0, 1.2)
    assert (add_sub["wanted"], add_sub["loaded"], add_sub["instances"], add_sub["queue_time_us"]) == (1, 1, [C1], 40.0)
    columns = {i["instance_id"]: i for i in body["instances"]}
    assert (columns[C1]["used_bytes"], columns[C1]["capacity_bytes"], columns[C1]["memory_of"]) == \
        (80 * MIB, 8192 * MIB, "container")
    assert columns[C2]["address"] == "nm2:8000"


def test_metrics_carry_each_models_copies_by_state_and_queue_time_beside_the_seed_five_and_pass_promtool(placed_am):
    with api(placed_am) as http:
        text = http.get("/metrics").raise_for_status().text
    for name in ("tarn_target_containers", "tarn_running_containers", "tarn_container_load",
                 "tarn_gpu_utilization", "tarn_gpu_memory_used"):
        assert f"# TYPE {name} gauge" in text, name
    deployment = placed_am.name
    for state, count in (("wanted", 2), ("ready", 1), ("loading", 1), ("unloading", 0), ("failed", 0),
                         ("missing", 0)):
        line = f'tarn_model_copies{{deployment="{deployment}",model="identity",state="{state}"}} {float(count)}'
        assert line in text, (line, text)
    assert f'tarn_model_queue_time_seconds{{deployment="{deployment}",model="identity"}} 0.0018' in text, text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_tarn_models_document_and_table_come_from_the_api(placed_am):
    document = models_document(placed_am.url, TOKEN, APP_ID)
    assert document["app_id"] == APP_ID and document["am_address"] == placed_am.url
    rows = {line.split()[0]: line for line in render_models(document).splitlines() if line}
    assert rows["identity"].split()[:6] == ["identity", "1/2", "+1", "loading", C1, "(ready),"]
    assert "50.0 MiB measured" in rows["identity"] and "1.8 ms" in rows["identity"]
    assert rows[C1].split()[1:] == ["nm1", "nm1:8000", "ready", "80.0", "MiB", "of", "8.0", "GiB", "(container)"]


def test_with_authz_down_api_models_and_api_states_placement_leave_the_models_out_and_say_why(placed_am):
    am = placed_am
    with api(am) as http:
        assert {line["name"] for line in http.get("/api/state").json()["model_placement"]} == {"identity", "add_sub"}
    down = AuthzClient(f"http://127.0.0.1:{free_port()}", 0.5)
    am.call(lambda: setattr(am.context, "authz", down))
    try:
        with api(am) as http:
            body = http.get("/api/models", headers={"X-TARN-User": "alice"}).json()
            state = http.get("/api/state", headers={"X-TARN-User": "alice"}).json()
    finally:
        am.call(lambda: setattr(am.context, "authz", AuthzClient(None)))
    assert body["models"] == [] and "authz unreachable" in body["unavailable"]["models"]
    assert [i["instance_id"] for i in body["instances"]] == [C1, C2]
    assert state["model_placement"] == [] and "authz unreachable" in state["unavailable"]["model_placement"]


def test_copies_wanted_are_refused_with_503_when_skeins_store_cannot_take_them_and_nothing_changes(placed_am):
    am = placed_am
    stored = am.redis.get(f"tarn:{am.name}:model-copies")
    with api(am) as http:
        answer = http.post("/model-copies", json={"model": "add_sub", "copies": 2})
    assert answer.status_code == 503 and "skein application master unreachable" in answer.json()["detail"]
    assert am.controller.policy.models.wanted == {"identity": 2}
    assert am.redis.get(f"tarn:{am.name}:model-copies") == stored


def test_another_applications_copies_are_not_taken_and_without_any_word_the_placer_asks_again(stack):
    name = f"mod{uuid.uuid4().hex[:8]}"
    client = redis_client(stack)
    other = StoredCopies(copies={"identity": 2}).model_dump_json()
    client.set(f"tarn:{name}:model-copies", f"application_1_0001 {other}")
    try:
        settings = settings_for(name, stack)
        store = CopiesStore(unreachable_skein(), RedisBus(settings.redis_url, name, APP_ID))
        # skein unreachable and Redis holding nothing of this application: unknown, asked again.
        assert asyncio.run(store.restored()) is None
        client.set(f"tarn:{name}:model-copies", f"{APP_ID} {StoredCopies(copies={'add_sub': 2}).model_dump_json()}")
        assert asyncio.run(CopiesStore(unreachable_skein(), RedisBus(settings.redis_url, name, APP_ID)).restored()) \
            == {"add_sub": 2}  # this application's: taken (a fresh bus: asyncio.run's loops are not shared)
    finally:
        client.delete(f"tarn:{name}:model-copies")
        client.close()


def test_the_dashboard_draws_the_model_by_instance_matrix_with_each_copys_state_and_memory(placed_am):
    am = placed_am
    with chromium_page(am.url) as (page, elsewhere, errors):
        page.goto(f"{am.url}/dashboard#token={TOKEN}")
        cell = f"#placement tbody tr[data-model='identity'] td[data-instance='{C2}']"
        page.wait_for_selector(f"{cell}[data-state='load commanded']", timeout=20_000)
        ready = page.locator(f"#placement tbody tr[data-model='identity'] td[data-instance='{C1}']")
        assert ready.get_attribute("data-state") == "ready" and "50 MiB" in ready.inner_text()
        assert page.locator(f"#placement tbody tr[data-model='add_sub'] td[data-instance='{C2}']").inner_text() == ""
        heads = page.locator("#placement thead th").all_inner_texts()
        assert heads[:4] == ["model", "copies", "memory", "queue"] and any("80 MiB / 8.0 GiB" in h for h in heads)
        assert "1/2" in page.inner_text("#placement tbody tr[data-model='identity']")
        screenshot(page, "dashboard-model-matrix.png")
    assert errors == [] and elsewhere == []


def test_an_all_models_deployment_answers_no_rows_and_a_note_saying_why(stack):
    from tarn_am.app import create_app
    from tarn_am.model_table import ALL_MODELS_NOTE

    settings = AmSettings(deployment="everywhere", slots=["nvidia-nm1=nm1"], token=TOKEN,
                          redis_url=stack.env["REDIS_URL"])
    controller = Controller(settings, unreachable_skein(), RedisBus(settings.redis_url, "everywhere", APP_ID),
                            FleetView("everywhere"))
    app = create_app(settings, ApiContext(controller=controller, authz=AuthzClient(None)))

    async def ask():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://am",
                                     headers={"X-TARN-Token": TOKEN}) as http:
            return (await http.get("/api/models")).json(), (await http.get("/metrics")).text

    body, metrics = asyncio.run(ask())
    assert (body["placement"], body["models"], body["note"]) == ("all-models", [], ALL_MODELS_NOTE)
    assert "tarn_model_copies" not in metrics and "tarn_target_containers{" in metrics
    assert render_models(body) == f"everywhere: {ALL_MODELS_NOTE}"
