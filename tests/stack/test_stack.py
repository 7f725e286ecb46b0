"""deploy/local/stack itself: up starts real servers that answer, down leaves nothing."""
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.polling import wait_for
from tests.support.stack_fixture import tarnstack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack"


def test_stack_up_writes_a_sourceable_env_and_down_leaves_no_process(tmp_path):
    run_dir = tmp_path / "run"
    up = subprocess.run([str(STACK), "up", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, up.stderr
    pids = [p["pid"] for p in tarnstack.Stack(run_dir).state["processes"].values()]
    try:
        assert len(pids) == 3 and all(tarnstack.alive(pid) for pid in pids)
        sourced = subprocess.run(["bash", "-c", f"source {run_dir}/stack.env && env"],
                                 capture_output=True, text=True, check=True).stdout
        env = dict(line.split("=", 1) for line in sourced.splitlines() if "=" in line)
        port = int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        assert tarnstack.redis_ping(port)
        assert tarnstack.zk_ruok(int(env["ZK_HOSTS"].rsplit(":", 1)[1]))
        assert "Name: HAProxy" in tarnstack.haproxy_command(env["HAPROXY_SOCKET"], "show info")
        status = subprocess.run([str(STACK), "status", "--run-dir", str(run_dir)], capture_output=True, text=True)
        assert status.returncode == 0 and "haproxy: running" in status.stdout
    finally:
        down = subprocess.run([str(STACK), "down", "--run-dir", str(run_dir)], capture_output=True, text=True,
                              timeout=60)
    assert down.returncode == 0, down.stderr
    assert not any(tarnstack.alive(pid) for pid in pids)
    assert not (run_dir / "stack.env").exists()
    status = subprocess.run([str(STACK), "status", "--run-dir", str(run_dir)], capture_output=True, text=True)
    assert status.returncode == 1 and "not running" in status.stdout


def test_a_second_up_in_the_same_run_dir_is_refused_with_a_clear_error(tmp_path):
    stack = tarnstack.Stack(tmp_path)
    stack.up()
    try:
        again = subprocess.run([str(STACK), "up", "--run-dir", str(tmp_path)], capture_output=True, text=True)
        assert again.returncode == 1 and "already runs" in again.stderr
    finally:
        stack.down()


def test_a_killed_component_restarts_on_the_same_port(stack):
    port = stack.state["ports"]["zookeeper"]
    old_pid = stack.state["processes"]["zookeeper"]["pid"]
    stack.restart("zookeeper")
    assert not tarnstack.alive(old_pid)
    assert stack.state["processes"]["zookeeper"]["pid"] != old_pid
    assert tarnstack.zk_ruok(port)


def test_a_broken_haproxy_config_fails_start_with_haproxys_own_message(tmp_path, monkeypatch):
    bad = tmp_path / "bad.tmpl"
    bad.write_text("global\n    no-such-keyword\n")
    monkeypatch.setattr(tarnstack, "HAPROXY_TEMPLATE", bad)
    stack = tarnstack.Stack(tmp_path / "run")
    with pytest.raises(tarnstack.StackError, match="haproxy rejected"):
        stack.up()
    assert stack.running() == {}
    assert os.listdir(tmp_path / "run")  # logs stay for the operator


@pytest.mark.hadoop
def test_stack_up_with_hadoop_adds_the_cluster_env_and_down_stops_it_too(tmp_path):
    run_dir = tmp_path / "run"
    up = subprocess.run([str(STACK), "up", "--hadoop", "--run-dir", str(run_dir)], capture_output=True, text=True,
                        timeout=600)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        env = tarnstack.read_env_file(run_dir / "stack.env")
        for key in ("REDIS_URL", "HADOOP_CONF_DIR", "WEBHDFS_URL", "HDFS_DEFAULT_FS", "JAVA_HOME"):
            assert env.get(key), f"{key} missing from stack.env"
        assert (Path(env["HADOOP_CONF_DIR"]) / "yarn-site.xml").exists()
        import urllib.request
        with urllib.request.urlopen(env["WEBHDFS_URL"] + "/webhdfs/v1/?op=GETFILESTATUS", timeout=10) as reply:
            assert b"FileStatus" in reply.read()
    finally:
        down = subprocess.run([str(STACK), "down", "--run-dir", str(run_dir)], capture_output=True, text=True,
                              timeout=300)
    assert down.returncode == 0 and "hadoop" in down.stdout
    leftovers = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}"


def test_haproxys_only_runtime_api_socket_is_the_unix_socket(stack):
    """An admin Runtime API on TCP would let anyone who reaches the port add servers that then
    receive authenticated users' requests (issue 14): HAProxy itself lists its CLI sockets."""
    listed = tarnstack.haproxy_command(stack.env["HAPROXY_SOCKET"], "show cli sockets").splitlines()
    sockets = [line.split()[0] for line in listed if line and not line.startswith("#")]
    assert sockets == [f"unix@{stack.env['HAPROXY_SOCKET']}"], listed


def test_stopping_a_process_this_one_did_not_start_waits_for_its_exit_not_for_init_to_reap_it():
    """`demo down` and `stack down` stop processes that `up`, long gone, started: init reaps them,
    seconds later on some machines, and a zombie is no longer running."""
    started = subprocess.run(["bash", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True,
                             text=True, check=True)
    pid = int(started.stdout)
    wait_for(lambda: os.getpgid(pid) == pid, 10, "sleep in its own session")  # setsid has run
    assert tarnstack.alive(pid)
    began = time.monotonic()
    tarnstack.stop_pid(pid)
    assert not tarnstack.alive(pid)
    assert time.monotonic() - began < 1.0
