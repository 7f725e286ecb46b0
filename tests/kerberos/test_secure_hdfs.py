"""Secure HDFS on the real KDC: WebHDFS takes SPNEGO and nothing else, and the identity
HDFS sees is the Kerberos principal's short name."""
from __future__ import annotations

import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from hdfs.ext.kerberos import KerberosClient

from tarn_am.cli.webhdfs import WebHdfsError, WebHdfsReader, spnego_auth
from tarn_node_agent.errors import RepositoryPermissionDenied, StagingError
from tarn_node_agent.hdfs import Hdfs

from .conftest import kdc

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(420)]


def _site(conf_dir: Path, name: str) -> dict:
    root = ET.parse(conf_dir / name).getroot()
    return {p.findtext("name"): p.findtext("value") for p in root.iter("property")}


@pytest.fixture
def alice_home(secure_stack, login) -> str:
    """/user/alice-XXXX, made by the HDFS superuser (the daemons' principal) and given to alice."""
    login("hadoop")
    home = f"/user/alice-{uuid.uuid4().hex[:6]}"
    admin = KerberosClient(secure_stack.env["WEBHDFS_URL"], mutual_auth="OPTIONAL")
    admin.makedirs(home, permission="700")
    admin.set_owner(home, owner="alice")
    yield home
    login("hadoop")
    admin.delete(home, recursive=True)


def test_every_service_and_user_has_its_principal_in_its_own_keytab(secure_stack):
    env = secure_stack.env
    assert Path(env["KRB5_CONFIG"]).is_file() and env["TARN_KRB5_REALM"] == kdc.REALM
    for name, principals in kdc.KEYTABS.items():
        keytab = env[f"TARN_KEYTAB_{name.upper().replace('-', '_')}"]
        listed = subprocess.run(["klist", "-k", keytab], capture_output=True, text=True,
                                env={"KRB5_CONFIG": env["KRB5_CONFIG"]}, check=True).stdout
        assert {line.split()[1] for line in listed.splitlines()[3:]} == {kdc.principal(p) for p in principals}


def test_the_minicluster_runs_in_secure_mode(secure_stack):
    conf = Path(secure_stack.env["HADOOP_CONF_DIR"])
    core, hdfs_site = _site(conf, "core-site.xml"), _site(conf, "hdfs-site.xml")
    assert core["hadoop.security.authentication"] == "kerberos"
    assert core["hadoop.http.authentication.type"] == "kerberos"
    assert hdfs_site["dfs.block.access.token.enable"] == "true"
    assert hdfs_site["dfs.data.transfer.protection"] == "authentication"
    # Every web UI wants SPNEGO: the RM's REST API and the NameNode's JMX answer 401 without it.
    for url in (f"{secure_stack.env['YARN_RM_WEBAPP_URL']}/ws/v1/cluster/info",
                f"{secure_stack.env['WEBHDFS_URL']}/jmx"):
        assert httpx.get(url, timeout=30).status_code == 401, url


def test_alice_writes_lists_and_reads_over_webhdfs_with_her_keytab(secure_stack, login, alice_home):
    login("alice")
    url = secure_stack.env["WEBHDFS_URL"]
    # A write goes through the DataNode: block access tokens and SASL data transfer.
    KerberosClient(url, mutual_auth="OPTIONAL").write(f"{alice_home}/model/config.pbtxt", data=b'name: "m"\n')

    with WebHdfsReader.open(url, None, spnego_auth()) as reader:
        assert [s["pathSuffix"] for s in reader.list_dir(alice_home)] == ["model"]
        status = reader.status(f"{alice_home}/model/config.pbtxt")
        assert status["owner"] == "alice"  # the principal's short name, not a user.name= claim
        assert reader.read(f"{alice_home}/model/config.pbtxt", limit_bytes=1024) == b'name: "m"\n'

    agent = Hdfs.connect(url, auth="kerberos")
    assert [e.path for e in agent.list_tree(alice_home)] == ["model", "model/config.pbtxt"]
    assert agent.read_bytes(f"{alice_home}/model/config.pbtxt") == b'name: "m"\n'


def test_bob_with_a_valid_ticket_is_still_denied_alices_private_directory(secure_stack, login, alice_home):
    login("bob")
    with pytest.raises(RepositoryPermissionDenied, match="user=bob"):
        Hdfs.connect(secure_stack.env["WEBHDFS_URL"], auth="kerberos").list_tree(alice_home)


def test_without_a_ticket_webhdfs_refuses_with_an_error_naming_the_fix(secure_stack, login, alice_home):
    login(None)
    url = secure_stack.env["WEBHDFS_URL"]
    with pytest.raises(WebHdfsError) as no_ticket:
        with WebHdfsReader.open(url, None, spnego_auth()) as reader:
            reader.list_dir(alice_home)
    assert "no valid Kerberos ticket" in str(no_ticket.value) and "kinit" in str(no_ticket.value)
    assert "\n" not in str(no_ticket.value)

    # Simple auth's user.name= claim counts for nothing on a secure cluster.
    with pytest.raises(WebHdfsError, match="as user.name=alice: the cluster wants Kerberos"):
        with WebHdfsReader.open(url, "alice") as reader:
            reader.list_dir(alice_home)

    with pytest.raises(StagingError, match="no valid delegation token .* or Kerberos ticket"):
        Hdfs.connect(url, auth="kerberos").list_tree(alice_home)
