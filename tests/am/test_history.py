"""The dashboard's history (history.py), its facts about containers (container_facts.py) and
its route (history_api.py): pure, no servers (the route runs in-process)."""
from __future__ import annotations

import json

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tarn_shared import events as ev

from tarn_am.container_facts import container_facts, logs_url
from tarn_am.containers import ObservedContainer
from tarn_am.history import (MAX_INSTANCES, MAX_MARKERS, History, InstancePoint, Marker, Point, capacity_for,
                             point_of)
from tarn_am.history_api import history_router, mount_static
from tarn_am.view import FleetView, TargetChange


def sample(instance_id: str, load: float = 0.5, models=(("identity", 10.0, 2000.0),), up: bool = True):
    return ev.TelemetrySample(
        deployment="d", app_id="application_1_0001", instance_id=instance_id, interval_s=2.0, triton_up=up,
        load=load, models=[ev.ModelSample(name=n, request_rate_per_s=r, queue_time_per_request_us=q)
                           for n, r, q in models])


def point(ts: float, target: int = 1, instances=None, models=None) -> Point:
    return Point(ts, target, target, target, instances or {}, models or {})


def test_the_ring_keeps_only_the_last_window_of_points():
    assert capacity_for(3600, 2.0) == 1800
    history = History(capacity_for(10, 2.0), 2.0)
    for t in range(20):
        history.add(point(1000.0 + 2 * t))
    assert history.capacity == 5 and history.window_s == 10.0
    assert [p.ts for p in history.points] == [1030.0, 1032.0, 1034.0, 1036.0, 1038.0]


def test_a_point_not_after_the_last_is_dropped():
    history = History(10, 2.0)
    history.add(point(100.0))
    history.add(point(99.0))
    history.add(point(100.0))
    assert [p.ts for p in history.points] == [100.0]


def test_a_clock_stepped_far_back_starts_the_series_again():
    history = History(10, 2.0)
    history.add(point(1000.0))
    history.add(point(1002.0))
    history.add(point(500.0))  # NTP stepped the clock back 500 s: charts must not freeze that long
    assert [p.ts for p in history.points] == [500.0]


def test_a_bad_window_is_refused_in_one_line():
    with pytest.raises(ValueError, match="must be positive"):
        capacity_for(0, 2.0)
    with pytest.raises(ValueError, match="at least 1"):
        History(0, 2.0)


def test_a_point_holds_each_instances_load_queue_and_rate_and_each_models_fleet_rate():
    samples = [
        sample("c1", 0.8, [("identity", 30.0, 1000.0), ("add_sub", 10.0, 5000.0)]),
        sample("c2", 0.2, [("identity", 5.0, 400.0)]),
        sample("c3", 0.0, [], up=False),
    ]
    p = point_of(500.0, 3, 3, 2, samples)
    assert (p.target, p.running, p.ready) == (3, 3, 2)
    # Queue time weighted by each model's request rate: (30*1 + 10*5) / 40 ms.
    assert p.instances["c1"] == InstancePoint(load=0.8, queue_ms=2.0, request_rate=40.0)
    assert p.instances["c2"] == InstancePoint(load=0.2, queue_ms=0.4, request_rate=5.0)
    # Triton down: no load figure, never a zero.
    assert p.instances["c3"] == InstancePoint(load=None, queue_ms=None, request_rate=None)
    assert p.models == {"add_sub": 10.0, "identity": 35.0}


def test_a_point_charts_at_most_64_instances_and_never_infinity():
    p = point_of(1.0, 1, 1, 1, [sample(f"c{n:03d}") for n in range(100)])
    assert len(p.instances) == MAX_INSTANCES and min(p.instances) == "c000"
    inf = point_of(1.0, 1, 1, 1, [sample("c1", float("inf"), [("m", float("inf"), 1.0)])])
    assert inf.instances["c1"].load is None and inf.models == {"m": None}
    history = History(4, 2.0)
    history.add(inf)
    json.dumps(history.columns(), allow_nan=False)  # what FastAPI sends: no NaN, no Infinity


def test_the_latest_sample_of_an_instance_wins():
    p = point_of(1.0, 1, 1, 1, [sample("c1", 0.1), sample("c1", 0.9)])
    assert p.instances["c1"].load == 0.9


def test_columns_are_aligned_with_nulls_where_an_instance_had_no_figure():
    history = History(10, 2.0)
    history.add(point(10.0, instances={"c1": InstancePoint(0.5, 1.0, 3.0)}, models={"identity": 3.0}))
    history.add(point(12.0, 2, instances={"c1": InstancePoint(0.7, 2.0, 4.0), "c2": InstancePoint(0.1, 0.5, 1.0)},
                      models={"identity": 5.0}))
    cols = history.columns()
    assert cols["ts"] == [10.0, 12.0] and cols["target"] == [1, 2]
    assert cols["instances"]["c1"]["load"] == [0.5, 0.7]
    assert cols["instances"]["c2"] == {"load": [None, 0.1], "queue_ms": [None, 0.5], "request_rate": [None, 1.0]}
    assert cols["models"]["identity"]["request_rate"] == [3.0, 5.0]
    assert history.columns(since=10.0)["ts"] == [12.0]
    assert history.columns(visible_model=lambda m: False)["models"] == {}


def test_target_changes_become_markers_once_and_stay_bounded():
    history = History(10, 2.0)
    changes = [TargetChange(10.0, "start", 0, 1, "initial instance count"),
               TargetChange(20.0, "api", 1, 3, "x" * 1000)]
    assert history.mark(changes) == 2
    assert history.mark(changes) == 0
    assert history.markers[1].reason == "x" * 200
    history.mark(TargetChange(100.0 + n, "autoscale", n, n + 1, "") for n in range(MAX_MARKERS + 50))
    assert len(history.markers) == MAX_MARKERS and history.markers[0].source == "autoscale"
    # One that fell out of the ring is a new marker when seen again (the view keeps fewer).
    assert history.mark([changes[0]]) == 1


def test_columns_carry_the_decisions_after_since():
    history = History(10, 2.0)
    history.mark([TargetChange(1.0, "start", 0, 1, "before the first point"), TargetChange(11.0, "api", 1, 2, "now")])
    history.add(point(10.0))
    history.add(point(12.0))
    assert [d["source"] for d in history.columns()["decisions"]] == ["start", "api"]
    decisions = history.columns(since=10.0)["decisions"]
    assert decisions == [{"ts": 11.0, "source": "api", "previous": 1, "target": 2, "reason": "now"}]


def filled_history() -> History:
    history = History(100, 2.0)
    for t in range(10):
        history.add(point(1000.0 + 2 * t, instances={"c1": InstancePoint(0.1 * t, None, 2.0)},
                          models={"identity": 2.0}))
    history.mark([Marker(1004.0, "api", 1, 2, "asked")])
    return history


def test_a_dump_reads_back_as_the_same_history():
    history = filled_history()
    text = history.dump()
    assert text.count('"c1"') == 1  # names once, in a table
    back = History.load(text, 100, 2.0, now=1020.0)
    assert list(back.points) == list(history.points)
    assert list(back.markers) == list(history.markers)
    assert back.columns() == history.columns()


def test_reading_back_leaves_out_what_is_older_than_the_window_or_ahead_of_the_clock():
    text = filled_history().dump()
    back = History.load(text, 3, 2.0, now=1018.0)  # a window of 6 s
    assert [p.ts for p in back.points] == [1012.0, 1014.0, 1016.0, 1018.0][-3:]
    assert list(back.markers) == []
    behind = History.load(text, 100, 2.0, now=1010.0)  # another node's clock, 8 s behind
    assert max(p.ts for p in behind.points) <= 1012.0


def test_a_dump_over_its_byte_cap_leaves_out_the_oldest_points():
    history = History(2000, 2.0)
    for t in range(2000):
        history.add(point(float(t), instances={f"c{n}": InstancePoint(0.5, 1.5, 2.5) for n in range(5)}))
    text = history.dump(max_bytes=50_000)
    assert len(text.encode()) <= 50_000
    back = History.load(text, 2000, 2.0, now=2000.0)
    assert 0 < len(back.points) < 2000 and back.points[-1].ts == 1999.0


@pytest.mark.parametrize("text", [
    "", "{", "[]", '{"v": 99}', '{"v": 1, "points": [[1, 2]]}', '{"v": 1, "points": 5}',
    '{"v": 1, "instances": ["c"], "points": [[1, 1, 1, 1, [[0, "x"]], []]]}',  # not a number
    '{"v": 1, "instances": ["c"], "points": [[1, 1, 1, 1, [[1, 0.5]], []]]}',  # beyond the table
    '{"v": 1, "instances": ["c"], "points": [[1, 1, 1, 1, [[-1, 0.5]], []]]}',
    '{"v": 1, "models": ["m"], "points": [[1, 1, 1, 1, [], [[0, Infinity]]]]}',
    '{"v": 1, "markers": [[1]]}'])
def test_an_unreadable_dump_is_refused_in_one_line(text):
    with pytest.raises(ValueError, match="^unreadable history") as raised:
        History.load(text, 10, 2.0, now=10.0)
    assert "\n" not in str(raised.value)


def test_the_points_follow_the_views_fresh_telemetry():
    view = FleetView("d")
    view.apply_lifecycle("1-0", ev.InstanceReady(
        deployment="d", app_id="a", instance_id="c1", seq=1, models=["identity"],
        endpoints=ev.Endpoints(host="nm1", http_port=8000, grpc_port=8001, metrics_port=8002)), now=0.0)
    view.apply_telemetry(sample("c1", 0.4), now=100.0)
    history = History(10, 2.0)
    history.add(point_of(101.0, 1, 1, 1, view.fresh_telemetry(101.0, 5.0)))
    history.add(point_of(110.0, 1, 1, 1, view.fresh_telemetry(110.0, 5.0)))  # the sample went stale
    assert history.columns()["instances"]["c1"]["load"] == [0.4, None]


# ---------------------------------------------------------------- container facts

def test_restarts_count_the_failed_containers_of_the_same_node_and_uptime_the_running_one():
    containers = (
        ObservedContainer("s1_0", "s1", "failed", "container_1_0001_01_000002", "nm1", 10.0, 20.0, "exit 1"),
        ObservedContainer("s1_1", "s1", "killed", "container_1_0001_01_000003", "nm1", 30.0, 40.0),
        ObservedContainer("s1_2", "s1", "running", "container_1_0001_01_000004", "nm1", 50.0,
                          node_http_address="nm1:8042"),
        ObservedContainer("s2_0", "s2", "requested"),
    )
    facts = container_facts(containers, now=170.0, user="alice")
    assert set(facts) == {"container_1_0001_01_000004", "s2_0"}
    running = facts["container_1_0001_01_000004"]
    assert (running.restarts, running.uptime_s, running.started_at) == (1, 120.0, 50.0)
    assert running.logs_url == "http://nm1:8042/node/containerlogs/container_1_0001_01_000004/alice"
    assert facts["s2_0"].uptime_s is None and facts["s2_0"].logs_url is None


def test_no_logs_link_without_a_nodemanager_address_or_a_user():
    assert logs_url("", "container_1", "alice") is None
    assert logs_url("nm1:8042", "container_1", None) is None
    assert logs_url("nm1:8042", "s1_0", "alice") is None


# ---------------------------------------------------------------- the route, in-process

def history_app(history: History, listable=lambda name: True) -> TestClient:
    async def permitted(names, user):
        return {n: listable(n) and user != "nobody" for n in names}

    app = FastAPI()
    app.include_router(history_router(lambda: history, Depends(lambda: None), permitted))
    mount_static(app)
    return TestClient(app)


def test_the_route_serves_the_columns_and_leaves_out_models_the_user_may_not_list():
    client = history_app(filled_history(), listable=lambda name: name != "secret")
    body = client.get("/api/history").raise_for_status().json()
    assert len(body["ts"]) == 10 and body["instances"]["c1"]["request_rate"] == [2.0] * 10
    assert list(body["models"]) == ["identity"] and body["decisions"][0]["target"] == 2
    assert client.get("/api/history", headers={"X-TARN-User": "nobody"}).json()["models"] == {}
    assert client.get("/api/history", params={"since": 1016.0}).json()["ts"] == [1018.0]
    assert client.get("/api/history", params={"since": "soon"}).status_code == 422


def test_the_charting_library_is_served_from_the_package():
    client = history_app(History(1, 2.0))
    script = client.get("/static/uPlot.iife.min.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.text.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert client.get("/static/uPlot.min.css").status_code == 200
    assert client.get("/static/%2e%2e/history.py").status_code == 404
