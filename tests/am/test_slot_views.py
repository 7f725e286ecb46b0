"""Each node's slot with its last failure and why: from the lifecycle stream into the view,
out through /api/state (the real app, in this process, no servers) and `tarn status`."""
from __future__ import annotations

import time

import pytest
import skein
from fastapi.testclient import TestClient

from tarn_shared import events as ev
from tarn_shared.membership import Member

from tarn_am import reconcile
from tarn_am.app import ApiContext, create_app
from tarn_am.authz import AuthzClient
from tarn_am.bus import RedisBus
from tarn_am.cli.status_slots import slot_lines
from tarn_am.cli.subcommands import render_status
from tarn_am.containers import ObservedContainer, Slot
from tarn_am.controller import Controller
from tarn_am.settings import AmSettings
from tarn_am.slot_views import FailureNotes, SlotInputs, slot_state
from tarn_am.view import FleetView

APP_ID = "application_1700000000000_0001"
LOST = "container_1700000000000_0001_01_000007"
SERVING = "container_1700000000000_0001_01_000002"
ENDPOINTS = ev.Endpoints(host="nm1", http_port=8000)
AGENT_REASON = "hdfs path /no/such/repo does not exist"
YARN_DIAGNOSTICS = "Exception from container-launch.\nContainer id: x\nExit code: 3\n"


def failed(container_id: str = LOST, ts: float = 1000.0, diagnostics: str = YARN_DIAGNOSTICS) -> ev.ContainerFailed:
    return ev.ContainerFailed(deployment="d", app_id=APP_ID, container_id=container_id, host="nm1",
                              service="nvidia-nm1", diagnostics=diagnostics, restarts=5, ts=ts)


def stopped(reason: str, seq: int = 10, instance_id: str = LOST) -> ev.InstanceStopped:
    return ev.InstanceStopped(deployment="d", app_id=APP_ID, instance_id=instance_id, seq=seq, endpoints=ENDPOINTS,
                              exit_code=3, reason=reason)


@pytest.mark.parametrize("agent_first", [True, False])
def test_the_agents_stop_reason_is_the_slots_last_failure_in_either_order(agent_first):
    view = FleetView("d")
    events = [stopped(AGENT_REASON), failed()] if agent_first else [failed(), stopped(AGENT_REASON)]
    for n, event in enumerate(events):
        view.apply_lifecycle(f"{n + 1}-0", event, 1000.0)

    failure = view.failures.last_failure("nvidia-nm1")
    assert (failure.reason, failure.at, failure.instance_id) == (AGENT_REASON, 1000.0, LOST)


def test_without_the_agents_word_yarns_diagnostics_are_the_reason_on_one_line():
    notes = FailureNotes()
    notes.apply(failed())
    assert notes.last_failure("nvidia-nm1").reason == "Exception from container-launch. Container id: x Exit code: 3"
    assert notes.last_failure("nvidia-nm2") is None


def test_a_later_failure_replaces_the_earlier_and_a_stale_stop_keeps_the_agents_reason():
    view = FleetView("d")
    view.apply_lifecycle("1-0", stopped(AGENT_REASON, seq=10), 0)
    view.apply_lifecycle("2-0", stopped("container lost: exit code 3", seq=9), 0)  # tarn-am's, behind the agent's
    view.apply_lifecycle("3-0", failed(ts=1000.0), 0)
    assert view.failures.last_failure("nvidia-nm1").reason == AGENT_REASON

    other = "container_1700000000000_0001_01_000009"
    view.apply_lifecycle("4-0", failed(other, ts=1100.0, diagnostics="killed by the NodeManager"), 0)
    view.apply_lifecycle("5-0", failed(LOST, ts=900.0), 0)  # an old one, replayed: not the latest
    assert view.failures.last_failure("nvidia-nm1").reason == "killed by the NodeManager"


def container(service: str, state: str, instance_id: str) -> ObservedContainer:
    return ObservedContainer(f"{service}_0", service, state, instance_id, service.split("-")[1])


@pytest.mark.parametrize("containers,members,looping,short,backoff_until,expected", [
    ([container("nvidia-nm1", "running", SERVING)], {SERVING: ev.InstanceState.READY}, (), False, 0, "serving"),
    ([container("nvidia-nm1", "running", SERVING)], {SERVING: ev.InstanceState.DRAINING}, (), False, 0, "serving"),
    ([container("nvidia-nm1", "requested", "")], {}, (), True, 0, "starting"),
    ([container("nvidia-nm1", "running", SERVING)], {SERVING: ev.InstanceState.STARTING}, (), True, 0, "starting"),
    ([container("nvidia-nm1", "failed", LOST)], {}, ("nvidia-nm1",), True, 2000, "crash_loop"),
    ([container("nvidia-nm1", "failed", LOST)], {}, (), True, 2000, "blocked"),
    ([container("nvidia-nm1", "failed", LOST)], {}, (), False, 2000, "idle"),  # the fleet is not short
    ([], {}, (), True, 0, "idle"),  # free and startable: the next round starts it
])
def test_a_slot_is_serving_starting_crash_looping_blocked_or_idle(containers, members, looping, short,
                                                                  backoff_until, expected):
    inputs = SlotInputs([Slot("nvidia-nm1", "nm1")], containers,
                        {i: Member(i, s, 1, ENDPOINTS) for i, s in members.items()},
                        looping, short, {"nvidia-nm1": backoff_until})
    assert slot_state(inputs.slots[0], inputs, now=1000.0) == expected


@pytest.fixture
def crash_looping_am():
    """tarn-am after nm1's slot lost five containers to the same missing repository."""
    settings = AmSettings(deployment="d", slots=["nvidia-nm1=nm1", "nvidia-nm2=nm2"], token="t",
                          redis_url="redis://127.0.0.1:1/0", min_instances=2, max_instances=2)
    yarn_client = skein.ApplicationClient("127.0.0.1:1", APP_ID, security=skein.Security.new_credentials())
    from tarn_am.yarn import YarnAdapter
    view = FleetView("d")
    controller = Controller(settings, YarnAdapter(yarn_client), RedisBus(settings.redis_url, "d", APP_ID), view)
    now = time.time()
    lost = [f"container_1700000000000_0001_01_00001{n}" for n in range(5)]
    view.containers = tuple(ObservedContainer(f"nvidia-nm1_{n}", "nvidia-nm1", "failed", c, "nm1")
                            for n, c in enumerate(lost)) + (container("nvidia-nm2", "running", SERVING),)
    view.apply_lifecycle("1-0", ev.InstanceReady(deployment="d", app_id=APP_ID, instance_id=SERVING, seq=1,
                                                 endpoints=ev.Endpoints(host="nm2", http_port=8000)), now)
    for n, instance_id in enumerate(lost):
        view.apply_lifecycle(f"{2 + 2 * n}-0", stopped(AGENT_REASON, instance_id=instance_id), now)
        view.apply_lifecycle(f"{3 + 2 * n}-0", failed(instance_id, ts=now - 50 + n), now)
    controller.state = reconcile.FleetState(failures={"nvidia-nm1": tuple(now - 50 + n for n in range(5))},
                                            next_start_at={"nvidia-nm1": now + 60},
                                            handled=frozenset(f"nvidia-nm1_{n}" for n in range(5)))
    controller._decide(now)  # the reconcile decision alone: nothing is acted on
    return controller, settings, now


def test_api_state_lists_each_slot_with_its_last_failure(crash_looping_am):
    controller, settings, now = crash_looping_am
    app = create_app(settings, ApiContext(controller=controller, authz=AuthzClient(None)))
    with TestClient(app) as http:
        state = http.get("/api/state", headers={"X-TARN-Token": "t"}).raise_for_status().json()

    assert state["crash_looping"] == ["nvidia-nm1"]
    assert state["slots"] == [
        {"node": "nm1", "service": "nvidia-nm1", "state": "crash_loop", "last_failure": AGENT_REASON,
         "last_failure_at": pytest.approx(now - 46), "blocked_reason": None},
        {"node": "nm2", "service": "nvidia-nm2", "state": "serving", "last_failure": None, "last_failure_at": None,
         "blocked_reason": None},
    ]


def test_tarn_status_names_the_crash_looping_node_and_its_last_failure(crash_looping_am):
    controller, settings, now = crash_looping_am
    app = create_app(settings, ApiContext(controller=controller, authz=AuthzClient(None)))
    with TestClient(app) as http:
        state = http.get("/api/state", headers={"X-TARN-Token": "t"}).json()

    text = render_status(state, "http://am:1")
    at = time.strftime("%H:%M:%S", time.localtime(now - 46))
    assert f"crash loop on nm1: restarts paused; last failure at {at}: {AGENT_REASON}" in text.splitlines()
    assert "nm2: " not in text.replace("nm2:8000", "")  # the serving node has no such line


def test_blocked_slots_get_a_line_and_an_older_tarn_am_still_shows_its_crash_loop_list():
    blocked = {"slots": [{"node": "nm2", "service": "nvidia-nm2", "state": "blocked",
                          "last_failure": "tritonserver exited with code 1", "last_failure_at": None},
                         {"node": "nm1", "service": "nvidia-nm1", "state": "idle",
                          "last_failure": "old news", "last_failure_at": 5.0}]}
    assert slot_lines(blocked) == [
        "blocked on nm2: waiting out the restart backoff; last failure: tritonserver exited with code 1"]
    assert slot_lines({"crash_looping": ["nvidia-nm1"]}) == ["crash loop on: nvidia-nm1"]
    assert slot_lines({"crash_looping": []}) == []
