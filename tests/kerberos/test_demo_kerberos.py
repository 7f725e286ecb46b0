"""The session's ONE Kerberized deployment (`make demo KERBEROS=1`'s path, conftest.py's
``kerberos_deployment``) and every check on it, in file order (pytest keeps it), the
destructive ones last: the application runs as alice (her keytab), an instance serves, and
the users prove who they are: basic auth at HAProxy, a Kerberos ticket (SPNEGO through Knox's
HadoopAuth provider) at Knox; Ranger's policies (the demo's local copy) allow alice and deny
bob at both; Knox refuses a request without a ticket. Its containers stage with delegation
tokens only; once YARN's first token has passed its max date (the stack's tokens live
LIFETIME_S) the real NameNode refuses it with the node-agent's line, and a killed container's
replacement stages with tarn-am's re-obtained token, reads the JCEKS file and is routed; a
restarted gateway-sync re-registers the sasl znodes; with the KDC down the fleet serves and a
replacement stages; `demo down` stops what the demo started and leaves the stack."""
from __future__ import annotations

import argparse
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from tarn_am.cli.am_client import CliError, Yarn
from tarn_am.cli.am_spnego import HTTP_KEYTAB_FILE
from tarn_am.cli.exits import classify
from tarn_am.cli.status_view import show_status
from tarn_am.cli.subcommands import render_status
from tarn_node_agent.errors import StagingError
from tarn_node_agent.hdfs import Hdfs
from tarn_shared.hadoop_tokens import parse_token_storage, select_hdfs_token
from tests.am.conftest import TARN
from tests.hadoop.cluster import cluster_from_env, create_jceks, kill_container, parse_env_file
from tests.support.polling import wait_for

from .conftest import LIFETIME_S, client_env, kdc
from .deployment import (REALM, ZK_PATH, KerberosDeployment, agent_log, container_dir, log_records,
                         triton_environments)

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
INFER = {"inputs": [{"name": "INPUT0", "shape": [2], "datatype": "FP32", "data": [4.0, 5.0]}]}
GATEWAY_SYNC = kdc.principal("tarn-gateway-sync/localhost")
KNOX = kdc.principal("knox/localhost")
NOT_YET = (httpx.HTTPError, KeyError, ValueError)
REPLACED_WITHIN_S = 300.0


@pytest.fixture
def deployment(kerberos_deployment) -> KerberosDeployment:
    return kerberos_deployment


@pytest.fixture
def knox_reader(deployment, login) -> Iterator[KazooClient]:
    """ZooKeeper as Knox reads it: its own keytab, SASL, read-only ACL."""
    login("knox")
    client = KazooClient(hosts=deployment.env()["ZK_HOSTS"], sasl_options={"mechanism": "GSSAPI"})
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


def assert_only_sasl_principals_change(deployment: KerberosDeployment, reader: KazooClient) -> None:
    names = reader.get_children(ZK_PATH)
    assert names
    for name in names:
        acl = reader.get_acls(f"{ZK_PATH}/{name}")[0]
        assert sorted((a.id.scheme, a.id.id, a.perms) for a in acl) == [("sasl", KNOX, 1), ("sasl", GATEWAY_SYNC, 31)]
    anonymous = KazooClient(hosts=deployment.env()["ZK_HOSTS"])
    anonymous.start(timeout=30)
    try:
        node = f"{ZK_PATH}/{names[0]}"
        for change in (lambda: anonymous.set(node, b"http://evil:1"), lambda: anonymous.delete(node),
                       lambda: anonymous.create(f"{ZK_PATH}/evil:1", b"x")):
            with pytest.raises(NoAuthError):
                change()
    finally:
        anonymous.stop()
        anonymous.close()


def replace_one(deployment: KerberosDeployment, victim: dict = None) -> tuple:
    """Kill a ready Triton container as a node failure would; the ready replacement's row and the time it took."""
    victim = victim or wait_for(lambda: next((r for r in deployment.instances() if r["ready"]), None), 240,
                                "a ready instance", ignore=NOT_YET)
    kill_container(victim["instance_id"])
    killed_at = time.monotonic()
    fresh = wait_for(lambda: next((r for r in deployment.instances() if r["ready"] and
                                   r["instance_id"] != victim["instance_id"]), None),
                     REPLACED_WITHIN_S, "a ready replacement", interval_s=1.0, ignore=NOT_YET)
    return victim, fresh, time.monotonic() - killed_at


def test_demo_serves_alice_and_denies_bob_through_haproxy_and_knox(deployment: KerberosDeployment, tmp_path):
    out = deployment.up_output
    assert "alice: identity([1.0, 2.0, 3.0]) = [1.0, 2.0, 3.0]  (allowed)" in out
    assert "bob:   identity(...) -> HTTP 403 Forbidden  (denied by tarn-authz)" in out
    assert "alice (Knox, SPNEGO): identity([1.0, 2.0, 3.0]) = [1.0, 2.0, 3.0]  (allowed)" in out
    assert f"{deployment.state['am_address']}/dashboard#token={deployment.token}" in out
    # Again from here, each user with their own ticket (a fresh SPNEGO token per request).
    infer = f"{deployment.knox_url}/v2/models/identity/infer"
    alice = httpx.post(infer, json=INFER, headers=deployment.spnego("alice", tmp_path), timeout=60)
    assert alice.status_code == 200, alice.text
    assert alice.json()["outputs"][0]["data"] == [4.0, 5.0]
    bob = httpx.post(infer, json=INFER, headers=deployment.spnego("bob", tmp_path), timeout=60)
    assert bob.status_code == 403, bob.text
    anonymous = httpx.post(infer, json=INFER, timeout=60)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Negotiate")
    # HAProxy: basic auth (docs/kerberos.md says why), the same decisions.
    haproxy = f"{deployment.haproxy_url}/v2/models/identity/infer"
    assert httpx.post(haproxy, json=INFER, headers=deployment.auth("alice"), timeout=60).status_code == 200
    assert httpx.post(haproxy, json=INFER, headers=deployment.auth("bob"), timeout=60).status_code == 403


def test_the_application_runs_as_alice(deployment: KerberosDeployment, tmp_path):
    # The RM's REST API is behind SPNEGO too: alice asks it about her application.
    # (`tarn status` with her keytab would say the same through skein, in 30 s of JVM start.)
    rm = deployment.env()["YARN_RM_WEBAPP_URL"]
    app = httpx.get(f"{rm}/ws/v1/cluster/apps/{deployment.state['app_id']}",
                    headers=deployment.spnego("alice", tmp_path), timeout=60)
    assert app.status_code == 200, app.text
    assert (app.json()["app"]["user"], app.json()["app"]["state"]) == ("alice", "RUNNING")


def test_tarn_status_with_alices_keytab_and_no_token_reads_her_deployment_and_bobs_ticket_gets_403(
        deployment: KerberosDeployment, secure_stack, login):
    """tarn submit turned SPNEGO on (--am-auth token+spnego): HTTP/_HOST's key shipped, alice (--principal) the owner."""
    env = {k: v for k, v in deployment.env().items() if k != "TARN_TOKEN"}
    name, app_id, address = deployment.state["deployment"], deployment.state["app_id"], deployment.state["am_address"]
    started = time.monotonic()
    done = subprocess.run([str(TARN), "status", "--name", name, *deployment.login_args()], env=env,
                          capture_output=True, text=True, timeout=180)
    print(f"\ntarn status over SPNEGO {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{name} {app_id} at {address}"), done.stdout
    localized = list((Path(secure_stack.env["TARN_HADOOP_RUN_DIR"]) / "yarn").glob(
        f"**/appcache/{app_id}/**/{HTTP_KEYTAB_FILE}"))
    assert localized and {stat.S_IMODE(p.stat().st_mode) for p in localized} == {0o400}, localized
    # bob cannot read alice's skein staging directory (YARN's part of tarn status), so his call
    # starts at the address: the same command's HTTP with his ticket, on the real tarn-am.
    login("bob")
    with pytest.raises(CliError) as refused:
        show_status(argparse.Namespace(json=False, watch=False, interval_s=2.0, yarn=Yarn(log=None)),
                    app_id, address, None, render_status)
    code, message, _ = classify(refused.value)
    assert (code, message) == (1, "GET /api/state: 403 bob (bob@TARN.TEST) may not read this deployment: only "
                                  "its owner (alice), admins (none) and viewers (none) may; see TARN_AM_OWNER, "
                                  "TARN_AM_ADMINS, TARN_AM_VIEWERS")


def test_gateway_sync_znodes_are_readable_by_knox_only(deployment: KerberosDeployment, tmp_path, monkeypatch):
    env = deployment.env()
    monkeypatch.setenv("KRB5_CONFIG", env["KRB5_CONFIG"])
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'ccache-knox'}")
    monkeypatch.setenv("KRB5_CLIENT_KTNAME", deployment.keytab("knox"))
    knox = KazooClient(hosts=env["ZK_HOSTS"], sasl_options={"mechanism": "GSSAPI"})
    knox.start(timeout=30)
    try:
        znodes = knox.get_children(ZK_PATH)
        assert znodes
        acl = knox.get_acls(f"{ZK_PATH}/{znodes[0]}")[0]  # Knox's principal may read the ACL too
        assert sorted(a.id.id for a in acl) == sorted([f"tarn-gateway-sync/localhost@{REALM}", f"knox/localhost@{REALM}"])
    finally:
        knox.stop()
        knox.close()
    znode = f"{ZK_PATH}/{znodes[0]}"
    for key in ("KRB5CCNAME", "KRB5_CLIENT_KTNAME"):
        monkeypatch.delenv(key)
    anonymous = KazooClient(hosts=env["ZK_HOSTS"])
    anonymous.start(timeout=30)
    try:
        with pytest.raises(NoAuthError):
            anonymous.get(znode)
    finally:
        anonymous.stop()
        anonymous.close()


def test_gateway_sync_routes_the_kerberized_fleet_and_only_sasl_principals_change_its_znodes(deployment, knox_reader):
    routed = wait_for(lambda: deployment.routed_as_fleet(knox_reader), 300, "HAProxy and ZooKeeper routing the fleet",
                      interval_s=1.0, ignore=NOT_YET)
    assert len(routed) == 1
    assert deployment.infer_as_alice() == [1.0, 2.0, 3.0]
    assert_only_sasl_principals_change(deployment, knox_reader)


def test_the_containers_stage_with_a_delegation_token_and_no_ticket(deployment, secure_stack):
    first = wait_for(lambda: next((r for r in deployment.instances() if r["ready"]), None), 240, "one instance ready",
                     ignore=NOT_YET)
    # The only credential a container has here is the token: no ticket cache, no keytab.
    assert "using an HDFS delegation token" in agent_log(secure_stack, deployment.state["app_id"], first["instance_id"])


def test_after_the_first_token_expired_a_killed_container_is_replaced_with_tarn_ams_token(
        deployment, secure_stack, knox_reader, tmp_path):
    app_id = deployment.state["app_id"]
    first = wait_for(lambda: next((r for r in deployment.instances() if r["ready"]), None), 300, "a ready instance",
                     ignore=NOT_YET)
    # The token YARN gave every container of the application at submission, and its end.
    token_file = container_dir(secure_stack, first["instance_id"]) / "container_tokens"
    yarn_token = select_hdfs_token(parse_token_storage(token_file.read_bytes()))
    end_s = yarn_token.identifier_fields().max_date_ms / 1000
    assert end_s - time.time() < LIFETIME_S
    # A secret the replacement must read from the demo's JCEKS file (with tarn-am's token too).
    env = parse_env_file(secure_stack.run_dir / "hadoop.env")
    env.update(client_env(secure_stack, tmp_path, "alice"))
    subprocess.run(["kinit", "-k", "-t", env["KRB5_CLIENT_KTNAME"], kdc.principal("alice")], env=env, check=True,
                   timeout=30)
    create_jceks(cluster_from_env(env), "/user/alice/tarn-demo/triton.jceks",
                 {"tarn.env.tarn_test_flag": "from-kerberized-hdfs"})
    time.sleep(max(0.0, end_s - time.time() + 2))

    # The real NameNode refuses it now, and the node-agent says which token, when and what renews it.
    agent_view = Hdfs.connect(secure_stack.env["WEBHDFS_URL"], auth="token",
                              environ={"HADOOP_TOKEN_FILE_LOCATION": str(token_file)})
    with pytest.raises(StagingError) as refused:
        agent_view.status("/user/alice")
    message = str(refused.value)
    assert message.startswith(f"WebHDFS refused {yarn_token.describe()} while reading the status of /user/alice: "
                              "it expired at 20"), message
    assert "tarn-am must renew or re-obtain it" in message and "--keytab" in message

    # On either node: where the application's files are not localized yet, the RM's proxy-user
    # tokens localize them; the container's own staging needs tarn-am's.
    _, fresh, took_s = replace_one(deployment, first)
    print(f"\nkilled after the first token's end -> ready replacement on {fresh['host']} (first on "
          f"{first['host']}) in {took_s:.1f} s")
    used = log_records(secure_stack, app_id, fresh["instance_id"], "using an HDFS delegation token")
    assert used and all(r["alias"].startswith("tarn-am:") for r in used), used
    obtained = log_records(secure_stack, app_id, "*", "re-obtained an HDFS delegation token")
    assert len(obtained) >= 2, obtained  # at start, and again before the first one's half-life
    # The JCEKS file came the same way: its secret is in the new Triton's environment.
    assert any(b"TARN_TEST_FLAG=from-kerberized-hdfs" in e for e in triton_environments(secure_stack))
    after = wait_for(lambda: deployment.routed_as_fleet(knox_reader), 120, "the replacement routed", ignore=NOT_YET)
    assert len(after) == 1
    assert deployment.infer_as_alice() == [1.0, 2.0, 3.0]


def test_a_restarted_gateway_sync_re_registers_the_znodes_with_sasl_acls(deployment, knox_reader):
    fleet_now = wait_for(lambda: deployment.routed_as_fleet(knox_reader), 240, "the fleet routed", ignore=NOT_YET)
    owners = {n: knox_reader.exists(f"{ZK_PATH}/{n}").ephemeralOwner for n in knox_reader.get_children(ZK_PATH)}
    old_pid = deployment.state["processes"]["gateway-sync"]["pid"]
    argv, env = deployment.kill_process("gateway-sync")
    # Its session ends (zk_session_timeout_s, 10 s) and its ephemeral znodes with it.
    wait_for(lambda: not deployment.znodes(knox_reader), 60, "the dead gateway-sync's znodes gone")
    restarted_at = time.monotonic()
    assert deployment.start_process("gateway-sync", argv, env) != old_pid  # recorded: `demo down` stops it
    wait_for(lambda: deployment.routed_as_fleet(knox_reader) == fleet_now, 120, "the znodes back", ignore=NOT_YET)
    print(f"\ngateway-sync restarted -> znodes re-registered {time.monotonic() - restarted_at:.1f} s")
    new_owners = {n: knox_reader.exists(f"{ZK_PATH}/{n}").ephemeralOwner for n in knox_reader.get_children(ZK_PATH)}
    assert set(new_owners) == set(owners) and not set(new_owners.values()) & set(owners.values())
    assert_only_sasl_principals_change(deployment, knox_reader)


def test_with_the_kdc_down_the_fleet_serves_and_a_replacement_stages_with_its_token(
        deployment, secure_stack, knox_reader, tmp_path):
    wait_for(lambda: deployment.routed_as_fleet(knox_reader), 240, "the fleet routed", ignore=NOT_YET)
    secure_stack.kill("kdc")
    try:
        assert subprocess.run(["kinit", "-k", "-t", str(secure_stack.kdc.keytab("bob")), kdc.principal("bob")],
                              env=dict(os.environ, **client_env(secure_stack, tmp_path, None)),
                              capture_output=True, timeout=30).returncode != 0  # the KDC is really gone
        assert deployment.infer_as_alice() == [1.0, 2.0, 3.0]
        _, fresh, took_s = replace_one(deployment)
        print(f"\nKDC down: killed Triton container -> ready replacement {took_s:.1f} s")
        assert "using an HDFS delegation token" in agent_log(secure_stack, deployment.state["app_id"],
                                                             fresh["instance_id"])
        wait_for(lambda: deployment.routed_as_fleet(knox_reader), 120, "the replacement routed", ignore=NOT_YET)
        assert deployment.infer_as_alice() == [1.0, 2.0, 3.0]
    finally:
        secure_stack.start("kdc")


def test_demo_down_stops_what_it_started_and_leaves_the_stack(deployment: KerberosDeployment, secure_stack):
    down = deployment.down()
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no process left in" in down.stdout
    assert all(secure_stack.running().values()), secure_stack.running()
    assert not (deployment.run_dir / "demo" / "demo.json").exists()
    print(f"\nKerberized demo down: {deployment.down_s:.1f} s wall")


def test_the_demo_runs_the_shipped_kerberos_topology_with_only_the_stack_values_set(tmp_path):
    """Pure: demo_knox renders deploy/knox/topologies/tarn-kerberos.xml, changing only named values."""
    import xml.etree.ElementTree as ET

    import demo_knox  # deploy/local, on sys.path through .deployment

    shipped = ET.parse(demo_knox.TOPOLOGY).getroot()
    rendered = ET.fromstring(demo_knox.kerberos_topology(
        REALM, tmp_path / "http.keytab", "http://127.0.0.1:1", "127.0.0.1:2", "/services/triton", "triton_demo"))

    def params(root):
        return {(p.findtext("name"), q.findtext("name")): q.findtext("value")
                for p in root.iter("provider") for q in p.iter("param")}

    before, after = params(shipped), params(rendered)
    assert after[("HadoopAuth", "hadoop.auth.config.type")] == "kerberos"
    assert after[("HadoopAuth", "hadoop.auth.config.simple.anonymous.allowed")] == "false"
    assert after[("HadoopAuth", "hadoop.auth.config.kerberos.principal")] == f"HTTP/localhost@{REALM}"
    assert after[("HadoopAuth", "hadoop.auth.config.kerberos.keytab")] == str(tmp_path / "http.keytab")
    assert "(.*@TARN\\.TEST)s/@.*//" in after[("HadoopAuth", "hadoop.auth.config.kerberos.name.rules")]
    assert "zookeeperEnsemble=127.0.0.1:2;zookeeperNamespace=/services/triton" in after[("HaProvider", "TRITON")]
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {("HadoopAuth", "hadoop.auth.config.kerberos.principal"),
                       ("HadoopAuth", "hadoop.auth.config.kerberos.keytab"),
                       ("HadoopAuth", "hadoop.auth.config.kerberos.name.rules"),
                       ("TarnAuthz", "authz.url"), ("HaProvider", "TRITON")}
    assert [p.findtext("name") for p in rendered.iter("provider")] == ["HadoopAuth", "Default", "TarnAuthz", "HaProvider"]


def test_a_knox_alias_that_starts_with_a_dash_is_refused_by_name_before_knoxcli_runs(tmp_path):
    """knoxcli takes `--value -x` for an option and prints only its usage (a demo secret from
    token_urlsafe did, one run in 64): the demo's secrets are hex, and prepare names the alias."""
    from tests.knox.support import KnoxGateway

    with pytest.raises(ValueError, match=r"starts with '-'.*tarn\.gateway\.key"):
        KnoxGateway(tmp_path / "knox").prepare({}, aliases={"tarn.gateway.key": "-Xk2", "other": "fine"})
    assert not (tmp_path / "knox").exists()
