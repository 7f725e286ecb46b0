"""`tarn submit` refuses a deployment whose HAProxy backend or ZooKeeper path another live
deployment owns (tarn_am.cli.owners): the pure decision, and the check against the real
Redis of the local stack with records written as the AM writes them."""
from __future__ import annotations

import uuid

import pytest

from tarn_am.cli.owners import GONE, check_owners, leftovers, place_conflict
from tarn_am.cli.options import SubmitOptions
from tarn_am.cli.preflight import PreflightError
from tarn_shared import events as ev
from tarn_shared.defaults import ZK_PATH
from tarn_shared.deployments import put_record, read_records, remove_record
from tarn_shared.streams import connect
from tests.support.stack_fixture import run


def options(name="new", **values) -> SubmitOptions:
    return SubmitOptions.parse({"model_repository": "hdfs:///m", "runtime": "process", "name": name, **values})


def record(name, app_id="application_1_0001", **fields) -> ev.DeploymentRecord:
    return ev.DeploymentRecord(deployment=name, app_id=app_id, **fields)


def test_a_live_deployment_on_the_same_defaults_is_named_as_the_owner():
    line = place_conflict(options(), {"old": record("old")}, {"application_1_0001": "RUNNING"})
    assert line == ("--haproxy-backend: HAProxy backend triton_backend is owned by deployment old "
                    "(application_1_0001); give --name new its own --haproxy-backend, or stop old first")


def test_the_same_zk_path_on_the_same_ensemble_is_refused_with_its_flag():
    records = {"old": record("old", haproxy_backend="other", zk_ensemble="zk1:2181,zk2:2181")}
    line = place_conflict(options(zk_ensemble="zk2:2181,zk1:2181"), records, {})
    assert line is not None and line.startswith("--zk-path: ZooKeeper path /services/triton/instances on ")
    assert "deployment old (application_1_0001)" in line


def test_own_places_a_resubmit_and_other_ensembles_are_no_conflict():
    records = {"new": record("new"), "elsewhere": record("elsewhere", haproxy_backend="b2", zk_ensemble="zk9:2181")}
    assert place_conflict(options(), records, {}) is None
    assert place_conflict(options(haproxy_backend="b3", zk_path="/services/x"), {"old": record("old")}, {}) is None


@pytest.mark.parametrize("state", ["FINISHED", "FAILED", "KILLED", GONE])
def test_a_record_whose_application_ended_owns_nothing(state):
    assert place_conflict(options(), {"old": record("old")}, {"application_1_0001": state}) is None


def test_only_ended_records_on_its_own_places_are_leftovers_to_release():
    records = {"ended": record("ended", app_id="a1"), "elsewhere": record("elsewhere", app_id="a2",
                                                                            haproxy_backend="b2", zk_path="/b2"),
               "running": record("running", app_id="a3", haproxy_backend="b3", zk_path="/b3"),
               "new": record("new", app_id="a4")}
    states = {"a1": "KILLED", "a2": GONE, "a3": "RUNNING", "a4": "FINISHED"}
    assert [r.deployment for r in leftovers(options(), records, states)] == ["ended"]
    assert leftovers(options(), {"ended": record("ended", removed=True)}, {"application_1_0001": GONE}) == []


def test_a_removed_record_owns_nothing_and_an_unasked_application_counts_as_live():
    assert place_conflict(options(), {"old": record("old", removed=True)}, {}) is None
    assert place_conflict(options(), {"old": record("old")}, {}) is not None


class Yarn:
    """skein's Client, as far as the check asks it: an unknown application raises."""

    def __init__(self, states):
        self.states = states

    def application_report(self, app_id):
        state = self.states.get(app_id, ValueError(f"Unknown ApplicationId '{app_id}'"))
        if isinstance(state, Exception):
            raise state
        return type("Report", (), {"state": state})()


@pytest.mark.integration
def test_submit_refuses_a_place_a_live_deployment_owns_in_the_real_redis(redis_url):
    backend = f"b{uuid.uuid4().hex[:8]}"
    owner = record(f"own{uuid.uuid4().hex[:6]}", app_id="application_9_0001", haproxy_backend=backend,
                   zk_ensemble="127.0.0.1:2181/side", zk_path=ZK_PATH)
    ended = record(f"end{uuid.uuid4().hex[:6]}", app_id="application_9_0002", haproxy_backend=f"{backend}x",
                   zk_path=f"/{backend}")
    run(_write(redis_url, owner, ended))
    # Earlier tests' deployments in this session's Redis hold the default ZooKeeper path: keep off it.
    mine = {"redis_url": redis_url, "zk_path": f"/t-{backend}/instances"}
    yarn = Yarn({"application_9_0001": "RUNNING", "application_9_0002": "FINISHED"})
    try:
        with pytest.raises(PreflightError) as refused:
            check_owners(options(**mine, haproxy_backend=backend), yarn, warn=pytest.fail)
        assert str(refused.value) == (f"--haproxy-backend: HAProxy backend {backend} is owned by deployment "
                                      f"{owner.deployment} (application_9_0001); give --name new its own "
                                      f"--haproxy-backend, or stop {owner.deployment} first")
        with pytest.raises(PreflightError, match="--zk-path: ZooKeeper path /side/services/triton/instances"):
            check_owners(options(redis_url=redis_url, zk_ensemble="127.0.0.1:2181", zk_path=f"/side{ZK_PATH}",
                                 haproxy_backend=f"{backend}y"), yarn, warn=pytest.fail)
        check_owners(options(owner.deployment, **mine, haproxy_backend=backend), yarn,
                     warn=pytest.fail)  # a resubmit of the owner itself
        yarn.states["application_9_0001"] = RuntimeError("the ResourceManager did not answer")  # counts as live
        with pytest.raises(PreflightError):
            check_owners(options(**mine, haproxy_backend=backend), yarn, warn=pytest.fail)

        warnings = []  # an ended application's record on the place: released, and the submit goes on
        check_owners(options(**mine, haproxy_backend=f"{backend}x"), yarn, warn=warnings.append)
        assert warnings == [f"tarn submit: released the record of deployment {ended.deployment} "
                            f"(application_9_0002, finished in YARN) that still claimed this deployment's places"]
        yarn.states["application_9_0001"] = ValueError("Unknown ApplicationId 'application_9_0001'")
        check_owners(options(**mine, haproxy_backend=backend), yarn, warn=warnings.append)
        assert len(warnings) == 2 and owner.deployment in warnings[1]
        left = run(_records(redis_url))
        assert owner.deployment not in left and ended.deployment not in left
    finally:  # other tests submit on the defaults to this Redis
        run(_write(redis_url, removing=[owner, ended]))


async def _write(redis_url, *records, removing=()):
    client = connect(redis_url)
    try:
        for r in records:
            await put_record(client, r)
        for r in removing:
            await remove_record(client, r)
    finally:
        await client.aclose()


async def _records(redis_url):
    client = connect(redis_url)
    try:
        return await read_records(client)
    finally:
        await client.aclose()


def test_an_unreachable_redis_is_said_and_the_submit_goes_on():
    warnings = []
    check_owners(options(redis_url="redis://127.0.0.1:1"), Yarn({}), warn=warnings.append)
    assert len(warnings) == 1 and "not checked before submitting" in warnings[0]
