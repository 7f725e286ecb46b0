"""`make demo KERBEROS=1`'s path once, on the session's Kerberized stack: the application runs as
alice (her keytab), an instance serves, and the users prove who they are: basic auth at HAProxy,
a Kerberos ticket (SPNEGO through Knox's HadoopAuth provider) at Knox. Ranger's policies (the
demo's local copy) allow alice and deny bob at both; Knox refuses a request without a ticket."""
from __future__ import annotations

import httpx
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from .deployment import REALM, KerberosDeployment, kerberos_demo

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
ZK_PATH = "/services/triton/instances"
INFER = {"inputs": [{"name": "INPUT0", "shape": [2], "datatype": "FP32", "data": [4.0, 5.0]}]}


@pytest.fixture(scope="module")
def deployment(secure_stack):
    yield from kerberos_demo(secure_stack)


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
