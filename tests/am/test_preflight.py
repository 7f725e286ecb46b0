"""`tarn submit` checks the model repository and the credential file on the minicluster's
real HDFS (through WebHDFS, with the node-agent's rules) and refuses, before YARN, what
every container would refuse. Nothing here is submitted: refusals end before skein starts,
and the good case runs the check alone."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid

import pytest

from tarn_am.cli.arguments import build_parser, submit_values
from tarn_am.cli.options import SubmitOptions
from tarn_am.cli.preflight import check_before_submit
from tests.hadoop.cluster import HadoopCluster, create_jceks

pytestmark = [pytest.mark.integration, pytest.mark.hadoop]
PASSWORD = "preflight-pw"


@pytest.fixture(scope="module")
def hdfs_dir(hadoop_cluster: HadoopCluster, webhdfs):
    base = f"/tarn-test/preflight-{uuid.uuid4().hex[:8]}"
    webhdfs.write(f"{base}/good/identity/config.pbtxt", data=b'backend: "python"\n')
    webhdfs.write(f"{base}/good/identity/1/model.py", data=b"# stand-in\n")
    webhdfs.write(f"{base}/bad/identity/config.pbtxt", data=b'backend: "python"\n')  # no version directory
    webhdfs.write(f"{base}/bad/README.md", data=b"not a model\n")
    create_jceks(hadoop_cluster, f"{base}/secrets.jceks", {"huggingface.token": "hf_PREFLIGHT"},
                 store_password=PASSWORD)
    yield base
    webhdfs.delete(base, recursive=True)


def tarn_submit(cluster: HadoopCluster, name: str, *flags: str) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (this checkout's code: PYTHONPATH is passed on)."""
    argv = [sys.executable, "-m", "tarn_am.cli", "submit", "--name", name, "--runtime", "process",
            "--nodes", ",".join(cluster.nodemanagers), "--wait", "0", *flags]
    return subprocess.run(argv, env=dict(cluster.env), capture_output=True, text=True, timeout=120)


def refused(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert "submitted" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tarn submit: "), result.stderr
    return lines[0]


def applications_named(cluster: HadoopCluster, name: str) -> list:
    with urllib.request.urlopen(f"{cluster.rm_webapp_url}/ws/v1/cluster/apps", timeout=10) as response:
        apps = (json.load(response).get("apps") or {}).get("app") or []
    return [a["id"] for a in apps if a.get("name") == f"tarn-{name}"]


@pytest.fixture
def name(hadoop_cluster: HadoopCluster):
    """A deployment name; should a submit get through after all, its application is killed."""
    name = f"preflight{uuid.uuid4().hex[:6]}"
    yield name
    leaked = applications_named(hadoop_cluster, name)
    for app_id in leaked:
        hadoop_cluster.kill_application(app_id)


def test_what_every_container_would_refuse_is_refused_before_yarn(hadoop_cluster, hdfs_dir, name):
    fs = hadoop_cluster.default_fs
    secrets = f"jceks://hdfs@{hadoop_cluster.namenode_authority}{hdfs_dir}/secrets.jceks"

    missing = refused(tarn_submit(hadoop_cluster, name, "--model-repository", f"{fs}/no/such/repo"))
    assert missing == f"tarn submit: --model-repository {fs}/no/such/repo: does not exist on HDFS"

    bad = refused(tarn_submit(hadoop_cluster, name, "--model-repository", f"{fs}{hdfs_dir}/bad"))
    assert bad == (f"tarn submit: --model-repository {fs}{hdfs_dir}/bad: not a valid Triton model repository: "
                   "'README.md' is a file; each top-level entry must be a model directory; "
                   "model 'identity' has no numeric version directory (e.g. identity/1/)")

    no_secrets = refused(tarn_submit(hadoop_cluster, name, "--model-repository", f"{fs}{hdfs_dir}/good",
                                     "--secrets", f"{fs}{hdfs_dir}/no-such.jceks"))
    assert no_secrets == f"tarn submit: --secrets {fs}{hdfs_dir}/no-such.jceks: does not exist on HDFS"

    wrong = refused(tarn_submit(hadoop_cluster, name, "--model-repository", f"{fs}{hdfs_dir}/good",
                                "--secrets", secrets))
    assert wrong.startswith(f"tarn submit: --secrets: cannot open credential file {secrets}: wrong store password")
    assert "tried Hadoop's default password \"none\" as the containers will" in wrong
    assert "hf_PREFLIGHT" not in wrong

    assert applications_named(hadoop_cluster, name) == []  # nothing reached YARN


def test_a_good_repository_and_credential_file_pass_the_check(hadoop_cluster, hdfs_dir):
    argv = ["submit", "--runtime", "process", "--model-repository", f"{hadoop_cluster.default_fs}{hdfs_dir}/good",
            "--secrets", f"jceks://hdfs@{hadoop_cluster.namenode_authority}{hdfs_dir}/secrets.jceks",
            "--agent-env", f"HADOOP_CREDSTORE_PASSWORD={PASSWORD}"]
    options = SubmitOptions.parse(submit_values(build_parser().parse_args(argv), {}))
    warnings = []

    unchecked = check_before_submit(options, hadoop_cluster.env, warn=warnings.append)

    assert unchecked == [] and warnings == []  # both were read on HDFS, and both passed
