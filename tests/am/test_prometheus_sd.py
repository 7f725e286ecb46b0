"""tarn-am's Prometheus service discovery: which targets the fleet's members give, with which
labels, and the route's token and format (pure, no servers)."""
from __future__ import annotations

import json
from typing import Dict

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tarn_shared import events as ev
from tarn_shared.auth import token_dependency
from tarn_shared.membership import Member, MembershipView, apply_event

from tarn_am.prometheus_sd import Role, am_group, prometheus_router, scrape_targets

D = "triton"
C2, C3, C4 = (f"container_1_0001_01_00000{i}" for i in (2, 3, 4))


def member(instance_id: str, host: str, state=ev.InstanceState.READY, agent_port=9100, metrics_port=8002) -> Member:
    endpoints = ev.Endpoints(host=host, http_port=8000, metrics_port=metrics_port, agent_port=agent_port)
    return Member(instance_id, state, 1, endpoints, ("m",), app_id="application_1_0001")


def by_role(groups) -> Dict[str, list]:
    found: Dict[str, list] = {}
    for group in groups:
        found.setdefault(group.labels["__meta_tarn_role"], []).append((group.targets, group.labels["instance"]))
    return found


def test_every_live_instance_gives_its_node_agent_and_its_triton_labelled_with_container_and_host():
    members = {C2: member(C2, "nm1"), C3: member(C3, "nm2", ev.InstanceState.DRAINING, agent_port=9200)}
    groups = scrape_targets(D, members)
    assert by_role(groups) == {"node-agent": [(["nm1:9100"], C2), (["nm2:9200"], C3)],
                               "triton": [(["nm1:8002"], C2), (["nm2:8002"], C3)]}
    triton = next(g for g in groups if g.targets == ["nm2:8002"])
    assert triton.labels == {"deployment": D, "instance": C3, "host": "nm2", "__meta_tarn_role": "triton",
                             "__meta_tarn_state": "draining"}


def test_stopped_instances_and_instances_without_endpoints_are_not_scraped():
    members = {C2: member(C2, "nm1", ev.InstanceState.STOPPED),
               C3: Member(C3, ev.InstanceState.READY, 1, None),
               C4: member(C4, "nm3")}
    assert {t for g in scrape_targets(D, members) for t in g.targets} == {"nm3:9100", "nm3:8002"}


def test_an_agent_that_does_not_announce_its_own_port_still_has_its_triton_scraped():
    groups = scrape_targets(D, {C2: member(C2, "nm1", agent_port=None)})
    assert by_role(groups) == {"triton": [(["nm1:8002"], C2)]}


def test_the_am_is_listed_first_at_its_advertised_address_named_by_its_container():
    am = am_group(D, "http://am-host:8888", "container_1_0001_01_000001")
    groups = scrape_targets(D, {C2: member(C2, "nm1")}, am)
    assert groups[0].targets == ["am-host:8888"]
    assert groups[0].labels == {"deployment": D, "instance": "container_1_0001_01_000001", "host": "am-host",
                                "__meta_tarn_role": "am", "__scheme__": "http"}
    # Outside YARN there is no container id: the address names it.
    assert am_group(D, "https://am-host:8888", None).labels["instance"] == "am-host:8888"
    assert am_group(D, "https://am-host:8888", None).labels["__scheme__"] == "https"


def test_no_am_target_before_the_am_has_an_address():
    assert am_group(D, None, "c1") is None
    assert am_group(D, "http://am-host", "c1") is None  # no port: nothing Prometheus could scrape


def test_a_role_keeps_only_its_targets():
    am = am_group(D, "http://am-host:8888", "c1")
    members = {C2: member(C2, "nm1")}
    assert [g.targets for g in scrape_targets(D, members, am, (Role.am,))] == [["am-host:8888"]]
    assert [g.targets for g in scrape_targets(D, members, am, (Role.triton,))] == [["nm1:8002"]]
    assert len(scrape_targets(D, members, am)) == 3


def test_the_agent_port_travels_in_the_instance_event_and_older_events_still_decode():
    ready = ev.InstanceReady(deployment=D, app_id="application_1_0001", instance_id=C2, seq=1,
                             endpoints=ev.Endpoints(host="nm1", http_port=8000, metrics_port=8002, agent_port=9100))
    decoded = ev.decode(ev.encode(ready))
    assert decoded.endpoints.agent_port == 9100
    view = apply_event(MembershipView(), decoded, "1-0")
    assert [g.targets for g in scrape_targets(D, view.members, roles=(Role.node_agent,))] == [["nm1:9100"]]
    payload = json.loads(ev.encode(ready)["event"])
    del payload["endpoints"]["agent_port"]  # what an agent from before the field sends
    assert ev.decode({"event": json.dumps(payload)}).endpoints.agent_port is None


@pytest.fixture
def client() -> TestClient:
    members = {C2: member(C2, "nm1")}
    app = FastAPI()
    token = Depends(token_dependency("sd-token"))
    app.include_router(prometheus_router(D, lambda: members, lambda: "http://am-host:8888", token,
                                         container_id="container_1_0001_01_000001"))
    return TestClient(app)


def test_the_route_wants_the_api_token_as_prometheus_sends_it(client):
    assert client.get("/api/prometheus/targets").status_code == 401
    assert client.get("/api/prometheus/targets", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/prometheus/targets", headers={"Authorization": "Bearer sd-token"}).status_code == 200


def test_the_route_answers_prometheus_http_sd_format(client):
    answer = client.get("/api/prometheus/targets", headers={"Authorization": "Bearer sd-token"})
    assert answer.headers["content-type"] == "application/json"
    groups = answer.json()
    # http_sd: a list of objects with exactly "targets" (host:port strings) and "labels" (string values).
    assert [sorted(g) for g in groups] == [["labels", "targets"]] * 3
    assert all(isinstance(v, str) for g in groups for v in g["labels"].values())
    assert [g["targets"] for g in groups] == [["am-host:8888"], ["nm1:9100"], ["nm1:8002"]]
    only = client.get("/api/prometheus/targets?role=node-agent", headers={"Authorization": "Bearer sd-token"})
    assert only.json() == [groups[1]]


def test_an_unknown_role_is_refused_naming_the_roles(client):
    answer = client.get("/api/prometheus/targets?role=gpu", headers={"Authorization": "Bearer sd-token"})
    assert answer.status_code == 422
    assert "'am', 'node-agent' or 'triton'" in answer.text
