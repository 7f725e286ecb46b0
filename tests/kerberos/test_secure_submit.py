"""`tarn submit --principal --keytab` on the Kerberized minicluster: the application runs as
alice, and its containers stage the model repository over secure WebHDFS with the HDFS
delegation token YARN hands them (HADOOP_TOKEN_FILE_LOCATION); they have no ticket."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from hdfs.ext.kerberos import KerberosClient

from tests.am.conftest import TARN, submitted, upload_models
from tests.hadoop.cluster import cluster_from_env, create_jceks, parse_env_file
from tests.support.polling import wait_for

from .conftest import client_env, kdc

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(600)]
ALICE = kdc.principal("alice")


@pytest.fixture(scope="module")
def alice(secure_stack, tmp_path_factory):
    """The minicluster's client environment for alice: her keytab, a ticket cache of her own
    (kinit'ed: the fixtures' skein client uses it), /user/alice made by the superuser, and
    the test models uploaded there."""
    caches = tmp_path_factory.mktemp("alice-cc")
    env = parse_env_file(secure_stack.run_dir / "hadoop.env")
    env.update(client_env(secure_stack, caches, "alice"))
    subprocess.run(["kinit", "-k", "-t", env["KRB5_CLIENT_KTNAME"], ALICE], env=env, check=True, timeout=30)
    models = f"/user/alice/models-{uuid.uuid4().hex[:6]}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in client_env(secure_stack, caches, "hadoop").items():
            patch.setenv(key, value)
        admin = KerberosClient(secure_stack.env["WEBHDFS_URL"], mutual_auth="OPTIONAL")
        admin.makedirs("/user/alice", permission="755")
        admin.set_owner("/user/alice", owner="alice")
        for key, value in client_env(secure_stack, caches, "alice").items():
            patch.setenv(key, value)
        upload_models(KerberosClient(secure_stack.env["WEBHDFS_URL"], mutual_auth="OPTIONAL"), models)
    cluster = cluster_from_env(env)
    # Hadoop's CredentialShell, as alice through her ticket cache.
    secrets = create_jceks(cluster, f"{models}-secrets.jceks", {"tarn.env.tarn_test_flag": "from-kerberized-hdfs"})
    return cluster, models, secrets


@pytest.fixture(scope="module")
def deployment(secure_stack, alice):
    cluster, models, secrets = alice
    keytab = str(secure_stack.kdc.keytab("alice"))
    yield from submitted(cluster, None, secure_stack, hdfs_models=models,
                         extra_args=["--principal", ALICE, "--keytab", keytab, "--secrets", secrets])


def _agent_logs(stack, app_id: str) -> str:
    logs = Path(stack.env["TARN_HADOOP_RUN_DIR"]) / "yarn"
    return "\n".join(p.read_text(errors="replace") for p in logs.glob(f"*/logs/{app_id}/*/*.log")
                     if "container_" in str(p) and not p.name.startswith("application.master"))


def _triton_environments(stack) -> list:
    """The environments of the tritonservers running in the stack's containers."""
    run_dir, found = str(stack.env["TARN_HADOOP_RUN_DIR"]), []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd").startswith(run_dir) and \
                    b"tritonserver" in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                found.append((proc / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
    return found


def test_a_keytab_submit_runs_as_alice_and_stages_with_the_delegation_token(secure_stack, deployment):
    with deployment.cluster.skein_client() as client:
        report = client.application_report(deployment.app_id)
    assert report.user == "alice"

    wait_for(lambda: deployment.state()["ready"] >= 1, timeout_s=240, message="one instance ready")
    # The only credential a container has here is the token: no ticket cache, no keytab.
    assert "using an HDFS delegation token" in _agent_logs(secure_stack, deployment.app_id)
    # The JCEKS file came the same way: its secret is in Triton's environment.
    assert any(b"TARN_TEST_FLAG=from-kerberized-hdfs" in env for env in _triton_environments(secure_stack))


def test_without_a_ticket_or_keytab_submit_is_refused_naming_the_fix(secure_stack, alice, tmp_path):
    cluster, models, _ = alice
    env = dict(cluster.env, KRB5CCNAME=f"FILE:{tmp_path / 'empty-ccache'}")
    env.pop("KRB5_CLIENT_KTNAME")
    result = subprocess.run(
        [TARN, "submit", "--name", f"noticket{uuid.uuid4().hex[:6]}", "--runtime", "process",
         "--model-repository", f"{cluster.default_fs}{models}", "--wait", "0", "--nodes", "tarn-nm1"],
        env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1 and "submitted" not in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tarn submit: YARN refused tarn: no valid Kerberos ticket; run kinit, or give "
                           "--principal and --keytab"), result.stderr
    # The WebHDFS check could not look either, and said so first (a warning, not a refusal).
    assert "no valid Kerberos ticket for SPNEGO" in result.stderr


def test_a_keytab_without_the_principal_is_refused_before_yarn(secure_stack, alice):
    cluster, models, _ = alice
    result = subprocess.run(
        [TARN, "submit", "--name", f"wrong{uuid.uuid4().hex[:6]}", "--runtime", "process",
         "--model-repository", f"{cluster.default_fs}{models}", "--wait", "0",
         "--principal", ALICE, "--keytab", str(secure_stack.kdc.keytab("bob"))],
        env=dict(cluster.env), capture_output=True, text=True, timeout=180)
    assert result.returncode != 0 and "submitted" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tarn submit: cannot log in as {ALICE} with --keytab"), lines[0]
