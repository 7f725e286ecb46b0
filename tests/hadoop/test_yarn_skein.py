"""skein drives the real minicluster: submission, scaling, failures, key-value store,
GPU scheduling and shutdown."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tarn_am.cli.launch_env import launch_env
from tests.hadoop.cluster import HadoopCluster
from tests.support.polling import wait_for

import skein

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(300)]

# Shell-special characters in a token or password: YARN writes `export K="V"` unescaped.
VERBATIM = 'a "quoted" $HOME `echo ran` back\\slash \'single\' two  spaces'
GPUS_PER_NODE = 2  # yarn.nodemanager.resource-type.yarn.io/gpu in minicluster-site.xml
SMALL = {"memory": 64, "vcores": 1}


def _service(script: str, instances: int = 0, gpus: int = 0, **kwargs) -> "skein.Service":
    return skein.Service(resources=skein.Resources(gpus=gpus, **SMALL), script=script,
                         instances=instances, **kwargs)


def _containers(app, service: str, *states: str) -> list:
    return app.get_containers(services=[service], states=list(states) or None)


def _running(app, service: str, count: int = 1) -> list:
    return wait_for(lambda: (lambda cs: cs if len(cs) >= count else None)(
        _containers(app, service, "RUNNING")), timeout_s=90,
        message=f"{count} RUNNING container(s) of {service}")


def _host(container) -> str:
    return container.yarn_node_http_address.rsplit(":", 1)[0]


def _wait_for_state(client, app_id: str, *states: str, timeout_s: float = 120):
    return wait_for(lambda: (lambda r: r if str(r.state) in states else None)(
        client.application_report(app_id)), timeout_s=timeout_s,
        message=f"{app_id} to reach {states}")


def _processes_in(path_fragment: str) -> list[int]:
    """Processes whose working directory contains path_fragment (containers run in
    per-container directories named after their application)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if path_fragment in os.readlink(entry / "cwd"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def skein_client(hadoop_cluster: HadoopCluster, tmp_path_factory):
    log = tmp_path_factory.mktemp("skein") / "driver.log"
    client = hadoop_cluster.skein_client(log=str(log))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def markers(tmp_path_factory) -> Path:
    """A directory the containers write into: same machine, same filesystem."""
    path = tmp_path_factory.mktemp("containers")
    path.chmod(0o777)
    return path


@pytest.fixture(scope="module")
def fleet(skein_client, markers: Path):
    """One application for the tests below; each test uses its own services."""
    spec = skein.ApplicationSpec(
        name="tarn-skein-test",
        queue="default",
        master=skein.Master(
            resources=skein.Resources(memory=256, vcores=1),
            env={**launch_env({"TARN_TEST_VERBATIM": VERBATIM}), "RAW_VERBATIM": VERBATIM},
            script=f'echo "$CONTAINER_ID $NM_HOST" > {markers}/master; printenv TARN_TEST_VERBATIM > {markers}/am.env; '
                   f'printenv RAW_VERBATIM > {markers}/raw.env; exec sleep 3600'),
        services={
            "worker": _service(f"printenv TARN_TEST_VERBATIM > {markers}/worker.env; exec sleep 3600", instances=1,
                               env=launch_env({"TARN_TEST_VERBATIM": VERBATIM})),
            "victim": _service("exec sleep 3600"),
            "flaky": _service(f"echo $$ > {markers}/flaky.$CONTAINER_ID; exec sleep 3600",
                              max_restarts=-1),
            "pinned": _service("exec sleep 3600", nodes=["tarn-nm2"], relax_locality=False),
            "gpu_one": _service("exec sleep 3600", gpus=1),
            "gpu_too_many": _service("exec sleep 3600", gpus=GPUS_PER_NODE + 1),
        },
    )
    submitted = time.monotonic()
    app_id = skein_client.submit(spec)
    _wait_for_state(skein_client, app_id, "RUNNING", "FAILED", "KILLED", "FINISHED")
    submit_to_running_s = time.monotonic() - submitted
    app = skein_client.connect(app_id)
    yield app_id, app, submit_to_running_s
    try:
        app.shutdown("SUCCEEDED")
    except Exception:  # already gone: the application's own test failed it
        skein_client.kill_application(app_id)


def test_submitted_application_runs_master_script_and_service(fleet, skein_client, markers,
                                                               capsys, record_property):
    app_id, app, submit_to_running_s = fleet
    report = skein_client.application_report(app_id)
    assert str(report.state) == "RUNNING", report.diagnostics
    [worker] = _running(app, "worker")
    assert _host(worker) in ("tarn-nm1", "tarn-nm2")
    master_line = wait_for(lambda: (markers / "master").exists() and (markers / "master").read_text(),
                             timeout_s=30, message="the master script's marker")
    container_id, nm_host = master_line.split()
    # Container ids carry the application id without its "application_" prefix.
    assert app_id.removeprefix("application_") in container_id
    assert nm_host in ("tarn-nm1", "tarn-nm2")
    record_property("submit_to_running_s", round(submit_to_running_s, 1))
    with capsys.disabled():
        print(f"\n[hadoop] skein submit -> RUNNING: {submit_to_running_s:.1f} s")


def test_tarns_settings_reach_the_master_and_the_containers_verbatim_through_yarns_launch_script(fleet, markers):
    def written(name: str) -> str:
        return wait_for(lambda: (markers / name).exists() and (markers / name).read_text(), timeout_s=60,
                        message=f"the container's {name}")

    assert written("am.env") == VERBATIM + "\n"
    assert written("worker.env") == VERBATIM + "\n"
    # Without launch_env the NodeManager's script strips the quotes and runs the backticks.
    assert written("raw.env") != VERBATIM + "\n" and "ran" in written("raw.env")


def test_scaling_a_service_to_two_runs_both_containers(fleet):
    _, app, _ = fleet
    app.scale("worker", 2)
    running = _running(app, "worker", count=2)
    assert {c.instance for c in running} == {0, 1}
    assert all(str(c.state) == "RUNNING" for c in running)


def test_a_container_killed_through_skein_is_reported_killed(fleet):
    _, app, _ = fleet
    app.scale("victim", 1)
    [victim] = _running(app, "victim")
    app.kill_container(victim.id)
    [killed] = wait_for(lambda: _containers(app, "victim", "KILLED"), timeout_s=60,
                          message="the killed container to be reported KILLED")
    assert killed.id == victim.id
    assert not _containers(app, "victim", "RUNNING")


def test_a_container_killed_by_a_signal_is_reported_failed_and_restarted(fleet, markers):
    _, app, _ = fleet
    app.scale("flaky", 1)
    [first] = _running(app, "flaky")
    pid_file = markers / f"flaky.{first.yarn_container_id}"
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(),
                         timeout_s=30, message="the container's pid file"))
    os.kill(pid, signal.SIGKILL)
    [failed] = wait_for(lambda: _containers(app, "flaky", "FAILED"), timeout_s=60,
                          message="the SIGKILLed container to be reported FAILED")
    assert failed.id == first.id
    assert failed.exit_message  # skein says only "Container failed during execution"
    [replacement] = _running(app, "flaky")  # max_restarts=-1: skein starts a new one
    assert replacement.id != first.id


def test_key_value_store_sets_gets_waits_and_deletes(fleet):
    _, app, _ = fleet
    app.kv["tarn.address"] = b"127.0.0.1:8000"
    assert app.kv["tarn.address"] == b"127.0.0.1:8000"
    assert app.kv.get_prefix("tarn.") == {"tarn.address": b"127.0.0.1:8000"}

    threading.Timer(1.0, lambda: app.kv.__setitem__("tarn.later", b"ready")).start()
    assert app.kv.wait("tarn.later") == b"ready"

    del app.kv["tarn.address"]
    assert "tarn.address" not in app.kv


def test_a_service_pinned_to_one_nodemanager_runs_there(fleet):
    _, app, _ = fleet
    app.scale("pinned", 1)
    [pinned] = _running(app, "pinned")
    assert _host(pinned) == "tarn-nm2"


def test_one_gpu_is_scheduled_and_more_than_a_node_has_stays_pending(fleet, hadoop_cluster):
    app_id, app, _ = fleet
    already = _allocated_gpus(hadoop_cluster)  # the session's cluster may serve other suites' apps
    app.scale("gpu_one", 1)
    _running(app, "gpu_one")
    assert _allocated_gpus(hadoop_cluster) == already + 1

    app.scale("gpu_too_many", 1)
    time.sleep(8)  # several NodeManager heartbeats: ample time to allocate if it could
    pending = _containers(app, "gpu_too_many")
    assert [str(c.state) for c in pending] == ["REQUESTED"]
    assert _allocated_gpus(hadoop_cluster) == already + 1
    assert _containers(app, "gpu_one", "RUNNING")


def _allocated_gpus(cluster: HadoopCluster) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{cluster.rm_webapp_url}/ws/v1/cluster/nodes", timeout=5) as response:
        nodes = json.load(response)["nodes"]["node"]
    total = 0
    for node in nodes:
        infos = node["usedResource"]["resourceInformations"]["resourceInformation"]
        total += sum(int(i["value"]) for i in infos if i["name"] == "yarn.io/gpu")
    return total


def test_application_shuts_down_cleanly(skein_client, hadoop_cluster):
    spec = skein.ApplicationSpec(
        name="tarn-skein-shutdown",
        master=skein.Master(resources=skein.Resources(memory=256, vcores=1)),
        services={"worker": _service("exec sleep 3600", instances=1)},
    )
    app_id = skein_client.submit(spec)
    app = skein_client.connect(app_id)
    _running(app, "worker")
    assert _processes_in(app_id), "expected the containers' processes to be visible"

    app.shutdown("SUCCEEDED", diagnostics="test done")
    report = _wait_for_state(skein_client, app_id, "FINISHED", "FAILED", "KILLED")
    assert str(report.state) == "FINISHED"
    assert str(report.final_status) == "SUCCEEDED"
    wait_for(lambda: not _processes_in(app_id), timeout_s=30,
               message="the application's container processes to exit")
