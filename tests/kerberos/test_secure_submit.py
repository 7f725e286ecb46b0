"""`tarn submit` on the Kerberized minicluster refuses, naming the fix, without a ticket or
keytab and with a keytab that is not the principal's. (A keytab submit that runs as alice and
stages with the delegation token YARN hands its containers is the session's one deployment:
test_demo_kerberos.py.)"""
from __future__ import annotations

import subprocess
import uuid

import pytest
from hdfs.ext.kerberos import KerberosClient

from tests.am.conftest import TARN, upload_models
from tests.hadoop.cluster import cluster_from_env, parse_env_file

from .conftest import client_env, kdc

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(600)]
ALICE = kdc.principal("alice")


@pytest.fixture(scope="module")
def alice(secure_stack, tmp_path_factory):
    """The minicluster's client environment for alice: her keytab, a ticket cache of her own
    (kinit'ed), /user/alice made by the superuser, and the test models uploaded there."""
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
    return cluster_from_env(env), models


def test_without_a_ticket_or_keytab_submit_is_refused_naming_the_fix(secure_stack, alice, tmp_path):
    cluster, models = alice
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
    cluster, models = alice
    result = subprocess.run(
        [TARN, "submit", "--name", f"wrong{uuid.uuid4().hex[:6]}", "--runtime", "process",
         "--model-repository", f"{cluster.default_fs}{models}", "--wait", "0",
         "--principal", ALICE, "--keytab", str(secure_stack.kdc.keytab("bob"))],
        env=dict(cluster.env), capture_output=True, text=True, timeout=180)
    assert result.returncode != 0 and "submitted" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tarn submit: cannot log in as {ALICE} with --keytab"), lines[0]
