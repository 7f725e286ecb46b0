"""Pure parts of the supervisor (restart backoff, crash loops) and of instance rendering."""
from __future__ import annotations

from tarn_shared.events import Endpoints, InstanceState
from tarn_shared.membership import Member

from tarn_am.containers import ObservedContainer
from tarn_am.render import instance_views, instances_text, wants_json
from tarn_am.supervisor import EXIT_CONFIG, SupervisorPolicy, SupervisorState, on_exit

POLICY = SupervisorPolicy(backoff_initial_s=1, backoff_max_s=8, healthy_after_s=60, crash_loop_exits=3,
                          crash_loop_window_s=30)


def test_supervisor_backs_off_exponentially_then_gives_up_on_a_crash_loop():
    state = SupervisorState()
    verdicts = []
    for now in (1.0, 3.0, 7.0):
        verdict, state = on_exit(1, 1.0, now, state, POLICY, "cannot bind 0.0.0.0:8888: in use")
        verdicts.append(verdict)
    assert [v.delay_s for v in verdicts[:2]] == [1, 2] and all(v.restart for v in verdicts[:2])
    assert verdict.crash_loop and not verdict.restart
    assert verdict.reason == "tarn-am crash loop: 3 exits in 30 s, the last with 1: cannot bind 0.0.0.0:8888: in use"


def test_exits_spread_wider_than_the_window_are_no_crash_loop():
    state = SupervisorState()
    for now in (1.0, 40.0, 80.0, 120.0):
        verdict, state = on_exit(1, 1.0, now, state, POLICY)
    assert verdict.restart and not verdict.crash_loop


def test_a_long_healthy_run_resets_the_backoff():
    state = SupervisorState(exits=(), consecutive_failures=4)
    verdict, state = on_exit(-9, 3600.0, 5000.0, state, POLICY)
    assert verdict.delay_s == 1 and not verdict.crash_loop


def test_a_configuration_error_is_not_restarted_and_keeps_its_message():
    verdict, _ = on_exit(EXIT_CONFIG, 0.2, 1.0, SupervisorState(), POLICY, "TARN_AM_SCALE_DOWN (0) must be above 0")
    assert not verdict.restart
    assert verdict.reason == ("tarn-am configuration error: TARN_AM_SCALE_DOWN (0) must be above 0 "
                              "(restarting cannot fix it)")


def _member(cid, state, host="nm1", port=8000, models=("identity",)):
    return Member(cid, state, 1, Endpoints(host=host, http_port=port), tuple(models))


def test_instances_text_lists_only_ready_instances_as_host_port_lines():
    containers = (ObservedContainer("s1_0", "s1", "running", "c1", "nm1"),
                  ObservedContainer("s2_0", "s2", "running", "c2", "nm2"),
                  ObservedContainer("s3_0", "s3", "requested"))
    members = {"c1": _member("c1", InstanceState.READY), "c2": _member("c2", InstanceState.DRAINING, "nm2")}
    rows = instance_views(containers, members, {}, frozenset())
    assert instances_text(rows) == "nm1:8000\n"
    assert {r.instance_id: r.state for r in rows} == {"c1": "ready", "c2": "draining", "s3_0": "requested"}


def test_an_instance_being_drained_by_the_am_is_not_listed_as_ready():
    containers = (ObservedContainer("s1_0", "s1", "running", "c1", "nm1"),)
    rows = instance_views(containers, {"c1": _member("c1", InstanceState.READY)}, {}, frozenset({"c1"}))
    assert instances_text(rows) == "" and rows[0].draining


def test_models_are_filtered_by_the_callers_permission():
    containers = (ObservedContainer("s1_0", "s1", "running", "c1", "nm1"),)
    members = {"c1": _member("c1", InstanceState.READY, models=("a", "b"))}
    rows = instance_views(containers, members, {}, frozenset(), allowed_model=lambda m: m == "b")
    assert rows[0].models == ["b"]


def test_json_only_when_asked_for():
    assert not wants_json(None) and not wants_json("*/*") and not wants_json("text/plain")
    assert wants_json("application/json") and wants_json("application/json, */*")
    assert not wants_json("text/plain, application/json;q=0.5")


def test_the_openapi_schema_builds_without_touching_the_fleet():
    from types import SimpleNamespace

    from tarn_am.app import create_app
    from tarn_am.settings import AmSettings

    app = create_app(AmSettings(deployment="x", slots="s=h"), SimpleNamespace(controller=None, authz=None))
    paths = app.openapi()["paths"]
    assert {"/instances", "/metrics", "/scale", "/authorize", "/models", "/api/models", "/dashboard",
            "/healthz"} <= set(paths)
    assert any(p["name"] == "X-TARN-User" for p in paths["/models"]["get"]["parameters"])
