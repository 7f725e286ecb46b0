"""A deployment outlives its first HDFS delegation token: on a secure minicluster of its own
whose tokens live LIFETIME_S (`dfs.namenode.delegation.token.max-lifetime`), a container
started after the token YARN gave at submission has expired still stages, with the token
tarn-am re-obtained from the keytab `tarn submit --keytab` shipped to it; and the expired
token itself is refused by the real NameNode with the node-agent's one-line message."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hdfs.ext.kerberos import KerberosClient

from tarn_node_agent.errors import StagingError
from tarn_node_agent.hdfs import Hdfs
from tarn_shared.hadoop_tokens import parse_token_storage, select_hdfs_token
from tarn_shared.kerberos_errors import SKEW_HINT
from tests.am.conftest import submitted, upload_models
from tests.am.test_am_on_yarn import NOT_YET, instances_json
from tests.hadoop.cluster import cluster_from_env, kill_container, parse_env_file
from tests.support.polling import wait_for

from .conftest import client_env, kdc, tarnstack

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
ALICE = kdc.principal("alice")
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")  # Debian's libfaketime
LIFETIME_S = 60  # renew interval = max lifetime: tarn-am re-obtains every 30 s
SHORT_TOKENS = {
    "dfs.namenode.delegation.token.max-lifetime": str(LIFETIME_S * 1000),
    "dfs.namenode.delegation.token.renew-interval": str(LIFETIME_S * 1000),
    # The NodeManagers localize a new container's files with the application's tokens: past
    # their max date only the RM's proxy-user privileges (YARN-2704) get fresh ones for that,
    # as on a real cluster running long-lived applications (docs/kerberos.md).
    "yarn.resourcemanager.proxy-user-privileges.enabled": "true",
    "hadoop.proxyuser.hadoop.hosts": "*",
    "hadoop.proxyuser.hadoop.groups": "*",
}


@pytest.fixture(scope="module")
def short_stack(tmp_path_factory):
    """Its own Kerberized stack: the session's keeps Hadoop's default lifetimes."""
    stack = tarnstack.Stack(tmp_path_factory.mktemp("kshort"))
    try:
        stack.up(hadoop=True, kerberos=True, hadoop_conf=SHORT_TOKENS)
    except (tarnstack.StackError, kdc.KdcError) as exc:
        pytest.fail(f"the short-token Kerberized stack did not start: {exc}", pytrace=False)
    yield stack
    stack.down()


@pytest.fixture(scope="module")
def deployment(short_stack, tmp_path_factory):
    caches = tmp_path_factory.mktemp("alice-cc")
    env = parse_env_file(short_stack.run_dir / "hadoop.env")
    env.update(client_env(short_stack, caches, "alice"))
    subprocess.run(["kinit", "-k", "-t", env["KRB5_CLIENT_KTNAME"], ALICE], env=env, check=True, timeout=30)
    models = f"/user/alice/models-{uuid.uuid4().hex[:6]}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in client_env(short_stack, caches, "hadoop").items():
            patch.setenv(key, value)
        admin = KerberosClient(short_stack.env["WEBHDFS_URL"], mutual_auth="OPTIONAL")
        admin.makedirs("/user/alice", permission="755")
        admin.set_owner("/user/alice", owner="alice")
        for key, value in client_env(short_stack, caches, "alice").items():
            patch.setenv(key, value)
        upload_models(KerberosClient(short_stack.env["WEBHDFS_URL"], mutual_auth="OPTIONAL"), models)
    keytab = str(short_stack.kdc.keytab("alice"))
    yield from submitted(cluster_from_env(env), None, short_stack, hdfs_models=models,
                         extra_args=["--principal", ALICE, "--keytab", keytab])


def _container_dir(stack, yarn_container_id: str) -> Path:
    found = list(Path(stack.env["TARN_HADOOP_RUN_DIR"]).glob(f"**/appcache/*/{yarn_container_id}"))
    assert found, f"no working directory of {yarn_container_id}"
    return found[0]


def _log_records(stack, app_id: str, container_id: str, message: str) -> list:
    logs = Path(stack.env["TARN_HADOOP_RUN_DIR"]) / "yarn"
    records = []
    for path in logs.glob(f"*/logs/{app_id}/{container_id}/*"):
        for line in path.read_text(errors="replace").splitlines():
            if message in line and line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:  # a line cut by the container's kill
                    continue
    return records


def test_a_container_started_after_the_first_token_expired_stages_with_a_re_obtained_one(short_stack, deployment):
    d = deployment
    first = wait_for(lambda: next((r for r in instances_json(d) if r["ready"]), None), 300, "a ready instance",
                     ignore=NOT_YET)
    # The token YARN gave every container of the application at submission, and its end.
    token_file = _container_dir(short_stack, first["instance_id"]) / "container_tokens"
    yarn_token = select_hdfs_token(parse_token_storage(token_file.read_bytes()))
    end_s = yarn_token.identifier_fields().max_date_ms / 1000
    assert end_s - time.time() < LIFETIME_S
    time.sleep(max(0.0, end_s - time.time() + 2))

    # The real NameNode refuses it now, and the node-agent says which token, when and what renews it.
    agent_view = Hdfs.connect(short_stack.env["WEBHDFS_URL"], auth="token",
                              environ={"HADOOP_TOKEN_FILE_LOCATION": str(token_file)})
    with pytest.raises(StagingError) as refused:
        agent_view.status("/user/alice")
    message = str(refused.value)
    assert message.startswith(f"WebHDFS refused {yarn_token.describe()} while reading the status of /user/alice: "
                              "it expired at 20"), message
    assert "tarn-am must renew or re-obtain it" in message and "--keytab" in message

    kill_container(first["instance_id"])
    killed_at = time.monotonic()

    def replacement():
        return next((r for r in instances_json(d) if r["instance_id"] != first["instance_id"] and r["ready"]), None)

    # On either node: where the application's files are not localized yet, the RM's proxy-user
    # tokens localize them; the container's own staging needs tarn-am's.
    fresh = wait_for(replacement, 300, "a ready replacement", ignore=NOT_YET)
    print(f"\nkilled after the first token's end -> ready replacement on {fresh['host']} (first on "
          f"{first['host']}) in {time.monotonic() - killed_at:.1f} s")
    used = _log_records(short_stack, d.app_id, fresh["instance_id"], "using an HDFS delegation token")
    assert used and all(r["alias"].startswith("tarn-am:") for r in used), used
    obtained = _log_records(short_stack, d.app_id, "*", "re-obtained an HDFS delegation token")
    assert len(obtained) >= 2, obtained  # at start, and again before the first one's half-life


def test_a_clock_an_hour_ahead_is_refused_by_the_kdc_and_tarn_am_names_the_fix(short_stack, tmp_path):
    if not LIBFAKETIME.exists():
        pytest.skip("libfaketime is not installed (deploy/local/install-deps installs it)")
    # bob pre-authenticates, so the KDC itself checks his clock (KRB_AP_ERR_SKEW); and this
    # client does not take the KDC's time instead of its own (MIT's kdc_timesync, on by default).
    subprocess.run(["kadmin.local", "-r", kdc.REALM, "-q", f"modprinc +requires_preauth {kdc.principal('bob')}"],
                   env=short_stack.kdc.env(), check=True, capture_output=True, timeout=30)
    krb5_conf = tmp_path / "krb5.conf"
    krb5_conf.write_text(short_stack.kdc.krb5_conf.read_text().replace("[libdefaults]", "[libdefaults]\n  kdc_timesync = 0"))
    login = ("from tarn_am.token_keeper import TokenError, WebHdfsTokens\n"
             "try:\n    WebHdfsTokens(*__import__('sys').argv[1:4]).obtain('')\n"
             "except TokenError as exc:\n    print(exc)\n")
    result = subprocess.run(
        [sys.executable, "-c", login, kdc.principal("bob"), str(short_stack.kdc.keytab("bob")),
         short_stack.env["HADOOP_CONF_DIR"]],
        env={"PATH": "/usr/bin:/bin", "KRB5_CONFIG": str(krb5_conf), "LD_PRELOAD": str(LIBFAKETIME),
             "FAKETIME": "+1h"}, capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith(f"cannot log in: {SKEW_HINT} (Kerberos said: "), result.stdout + result.stderr
    assert "Clock skew too great" in result.stdout and result.stdout.count("\n") == 1
