"""Faults on ONE Kerberized deployment (tests run in file order and build on its state): alice's
`tarn submit --principal --keytab` with a JCEKS file, and gateway-sync as its own process with
its keytab, on SASL ZooKeeper with sasl ACLs. A killed Triton container is replaced and the new
one stages with its delegation token; a restarted gateway-sync re-registers the znodes; with the
KDC down the fleet keeps serving and a replacement still stages (tokens, not tickets); a
gateway-sync without its ticket stops at once with one line naming the fix, and one started
while the KDC is down says why and leads once it answers."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator, Set

import httpx
import pytest
from hdfs.ext.kerberos import KerberosClient
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from tarn_gateway_sync import sasl_login
from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_gateway_sync.plan import Admin
from tests.am.conftest import Deployment, submitted, upload_models
from tests.gateway_sync.support import Replica, settings_for
from tests.hadoop.cluster import cluster_from_env, create_jceks, kill_container, parse_env_file
from tests.support.polling import wait_for
from tests.support.stack_fixture import _clear_backend

from .conftest import client_env, kdc

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
ALICE = kdc.principal("alice")
GATEWAY_SYNC = kdc.principal("tarn-gateway-sync/localhost")
KNOX = kdc.principal("knox/localhost")
ZK_ACL = [f"sasl:{GATEWAY_SYNC}:cdrwa", f"sasl:{KNOX}:r"]
BACKEND = "triton_backend"  # the stack's HAProxy frontend reaches it
NOT_YET = (httpx.HTTPError, KeyError, ValueError)
REPLACED_WITHIN_S = 240.0


class Fleet:
    """The deployment, its gateway-sync replica and how to read what the gateways route."""

    def __init__(self, stack, deployment: Deployment, zk_path: str, caches: Path) -> None:
        self.stack, self.deployment, self.zk_path, self.caches = stack, deployment, zk_path, caches
        self.replica = None

    def start_gateway_sync(self, keytab: str = "gateway-sync") -> Replica:
        with pytest.MonkeyPatch.context() as patch:  # the replica's process takes this environment
            patch.delenv("KRB5_CLIENT_KTNAME", raising=False)
            for key, value in client_env(self.stack, self.caches, keytab).items():
                patch.setenv(key, value)
            self.replica = Replica(settings_for(self.stack, self.stack.env["ZK_HOSTS"], replica=f"krb-{keytab}",
                                                deployment=self.deployment.name, zk_sasl_mechanism="GSSAPI",
                                                zk_acl=ZK_ACL), self.caches / f"gateway-sync-{keytab}.log")
        return self.replica

    def ready(self) -> Set[str]:
        """``ip:port`` of every ready instance, as tarn-am sees them."""
        with self.deployment.http() as http:
            lines = http.get("/instances").raise_for_status().text.split()
        return {_by_ip(line) for line in lines}

    def instances(self) -> list:
        with self.deployment.http() as http:
            return http.get("/instances", headers={"Accept": "application/json"}).raise_for_status().json()

    def haproxy(self) -> Set[str]:
        servers = asyncio.run(RuntimeApi(self.stack.env["HAPROXY_SOCKET"]).servers(BACKEND))
        return {f"{s.ip}:{s.port}" for s in servers if s.admin is Admin.READY and s.ip != "0.0.0.0"}

    def znodes(self, client: KazooClient) -> Set[str]:
        return {_by_ip(name) for name in client.get_children(self.zk_path)} if client.exists(self.zk_path) else set()

    def routed_as_fleet(self, reader: KazooClient) -> Set[str]:
        """The fleet, once it has one ready instance and HAProxy and ZooKeeper route exactly it."""
        fleet = self.ready()
        return fleet if fleet and self.haproxy() == fleet == self.znodes(reader) else set()


def _by_ip(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"{socket.gethostbyname(host)}:{port}"


@pytest.fixture(scope="module")
def fleet(secure_stack, tmp_path_factory) -> Iterator[Fleet]:
    """alice's models and JCEKS file on the secure HDFS, one Triton instance submitted with her
    keytab, and gateway-sync with its own keytab keeping triton_backend and a znode path of its own."""
    caches = tmp_path_factory.mktemp("faults")
    env = parse_env_file(secure_stack.run_dir / "hadoop.env")
    env.update(client_env(secure_stack, caches, "alice"))
    subprocess.run(["kinit", "-k", "-t", env["KRB5_CLIENT_KTNAME"], ALICE], env=env, check=True, timeout=30)
    models = f"/user/alice/faults-{uuid.uuid4().hex[:6]}"
    with pytest.MonkeyPatch.context() as patch:
        for keytab, make in (("hadoop", lambda c: (c.makedirs("/user/alice", permission="755"),
                                                   c.set_owner("/user/alice", owner="alice"))),
                             ("alice", lambda c: upload_models(c, models))):
            for key, value in client_env(secure_stack, caches, keytab).items():
                patch.setenv(key, value)
            make(KerberosClient(secure_stack.env["WEBHDFS_URL"], mutual_auth="OPTIONAL"))
    cluster = cluster_from_env(env)
    secrets = create_jceks(cluster, f"{models}-secrets.jceks", {"tarn.env.tarn_test_flag": "faults"})
    zk_path = f"/services/triton/krb-faults-{uuid.uuid4().hex[:6]}"
    deployments = submitted(cluster, None, secure_stack, hdfs_models=models, extra_args=[
        "--principal", ALICE, "--keytab", str(secure_stack.kdc.keytab("alice")), "--secrets", secrets,
        "--zk-path", zk_path])
    fleet = Fleet(secure_stack, next(deployments), zk_path, caches)
    fleet.start_gateway_sync()
    try:
        yield fleet
    finally:
        fleet.replica.stop()
        deployments.close()  # kills the application
        _clear_backend(secure_stack.env["HAPROXY_SOCKET"], {"name": BACKEND, "kind": "dyn"})


@pytest.fixture
def knox_reader(fleet, login) -> Iterator[KazooClient]:
    """ZooKeeper as Knox reads it: its own keytab, SASL, read-only ACL."""
    login("knox")
    client = KazooClient(hosts=fleet.stack.env["ZK_HOSTS"], sasl_options={"mechanism": "GSSAPI"})
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


def infer_through_haproxy(stack) -> list:
    body = {"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}
    response = httpx.post(f"http://127.0.0.1:{stack.env['HAPROXY_HTTP_PORT']}/v2/models/identity/infer",
                          json=body, timeout=10, trust_env=False)
    response.raise_for_status()
    return response.json()["outputs"][0]["data"]


def assert_only_sasl_principals_change(fleet: Fleet, reader: KazooClient) -> None:
    names = reader.get_children(fleet.zk_path)
    assert names
    for name in names:
        acl = reader.get_acls(f"{fleet.zk_path}/{name}")[0]
        assert sorted((a.id.scheme, a.id.id, a.perms) for a in acl) == [("sasl", KNOX, 1), ("sasl", GATEWAY_SYNC, 31)]
    anonymous = KazooClient(hosts=fleet.stack.env["ZK_HOSTS"])
    anonymous.start(timeout=30)
    try:
        node = f"{fleet.zk_path}/{names[0]}"
        for change in (lambda: anonymous.set(node, b"http://evil:1"), lambda: anonymous.delete(node),
                       lambda: anonymous.create(f"{fleet.zk_path}/evil:1", b"x")):
            with pytest.raises(NoAuthError):
                change()
    finally:
        anonymous.stop()
        anonymous.close()


def agent_log(stack, app_id: str, container_id: str) -> str:
    logs = Path(stack.env["TARN_HADOOP_RUN_DIR"]) / "yarn"
    return "\n".join(p.read_text(errors="replace") for p in logs.glob(f"*/logs/{app_id}/{container_id}/*.log"))


def replace_one(fleet: Fleet) -> tuple:
    """Kill a ready Triton container as a node failure would; the ready replacement's row and the time it took."""
    victim = wait_for(lambda: next((r for r in fleet.instances() if r["ready"]), None), 240, "a ready instance",
                      ignore=NOT_YET)
    kill_container(victim["instance_id"])
    killed_at = time.monotonic()
    fresh = wait_for(lambda: next((r for r in fleet.instances() if r["ready"] and
                                   r["instance_id"] != victim["instance_id"]), None),
                     REPLACED_WITHIN_S, "a ready replacement", interval_s=1.0, ignore=NOT_YET)
    return victim, fresh, time.monotonic() - killed_at


# ---------------------------------------------------------------- gateway-sync without its ticket

def test_gateway_sync_without_a_ticket_exits_at_once_with_one_line_naming_the_fix(secure_stack, tmp_path):
    settings = settings_for(secure_stack, secure_stack.env["ZK_HOSTS"], replica="krb-noticket",
                            deployment="none", zk_sasl_mechanism="GSSAPI", zk_acl=ZK_ACL)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("KRB5_CLIENT_KTNAME", raising=False)
        for key, value in client_env(secure_stack, tmp_path, None).items():
            patch.setenv(key, value)
        replica = Replica(settings, tmp_path / "gateway-sync.log")
    try:
        code = replica.proc.wait(timeout=60)
    finally:
        replica.stop()
    lines = (tmp_path / "gateway-sync.log").read_text().strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"tarn-gateway-sync: cannot log in to ZooKeeper at {secure_stack.env['ZK_HOSTS']} "
                               "with SASL GSSAPI: Kerberos says: No Kerberos credentials available"), lines[0]
    assert lines[0].endswith("set KRB5_CLIENT_KTNAME to gateway-sync's keytab (or KRB5CCNAME to a ticket cache "
                             "that kinit filled)"), lines[0]


def test_another_principals_keytab_is_refused_naming_who_logged_in_and_who_may_write(secure_stack, login):
    login("bob")  # a valid keytab, of the wrong principal: ZooKeeper would accept him, the ACLs not
    problem = sasl_login.check(secure_stack.env["ZK_HOSTS"], "GSSAPI", ZK_ACL)
    assert problem is not None and problem.fatal
    assert f"gateway-sync logs in as {kdc.principal('bob')} (KRB5_CLIENT_KTNAME=" in problem.message
    assert f"zk_acl lets only {GATEWAY_SYNC} write its znodes" in problem.message
    login("gateway-sync")
    assert sasl_login.check(secure_stack.env["ZK_HOSTS"], "GSSAPI", ZK_ACL) is None


def test_a_gateway_sync_started_with_the_kdc_down_says_why_and_leads_once_it_answers(secure_stack, tmp_path):
    settings = settings_for(secure_stack, secure_stack.env["ZK_HOSTS"], replica="krb-nokdc",
                            deployment="none", zk_sasl_mechanism="GSSAPI", zk_acl=ZK_ACL,
                            election_path=f"/tarn-krb-election-{uuid.uuid4().hex[:6]}")
    secure_stack.kill("kdc")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("KRB5_CLIENT_KTNAME", raising=False)
            for key, value in client_env(secure_stack, tmp_path, "gateway-sync").items():
                patch.setenv(key, value)
            replica = Replica(settings, tmp_path / "gateway-sync.log")
        log = tmp_path / "gateway-sync.log"
        wait_for(lambda: "Cannot contact any KDC for realm" in log.read_text(), 60, "the reason in its log")
        assert asyncio.run(replica.role()) == "standby" and replica.proc.poll() is None
    finally:
        secure_stack.start("kdc")
    try:
        back = time.monotonic()
        wait_for(lambda: asyncio.run(replica.role()) == "leader", 90, "leadership once the KDC answers")
        print(f"\nKDC back -> gateway-sync leader {time.monotonic() - back:.1f} s")
    finally:
        replica.stop()


# ---------------------------------------------------------------- the deployment

def test_gateway_sync_routes_the_kerberized_fleet_and_only_sasl_principals_change_its_znodes(fleet, knox_reader):
    routed = wait_for(lambda: fleet.routed_as_fleet(knox_reader), 300, "HAProxy and ZooKeeper routing the fleet",
                      interval_s=1.0, ignore=NOT_YET)
    print(f"\nsubmit -> one ready instance routed by HAProxy and ZooKeeper {time.time() - fleet.deployment.submitted_at:.1f} s")
    assert len(routed) == 1
    assert infer_through_haproxy(fleet.stack) == [1.0, 2.0, 3.0]
    assert_only_sasl_principals_change(fleet, knox_reader)


def test_a_killed_triton_container_is_replaced_stages_with_its_token_and_is_routed(fleet, knox_reader):
    wait_for(lambda: fleet.routed_as_fleet(knox_reader), 240, "the fleet routed", ignore=NOT_YET)
    _, fresh, took_s = replace_one(fleet)
    print(f"\nkilled Triton container -> ready replacement {took_s:.1f} s")
    # Its only credential is the token YARN gave the new container.
    assert "using an HDFS delegation token" in agent_log(fleet.stack, fleet.deployment.app_id, fresh["instance_id"])
    after = wait_for(lambda: fleet.routed_as_fleet(knox_reader), 120, "the replacement routed", ignore=NOT_YET)
    assert len(after) == 1
    assert infer_through_haproxy(fleet.stack) == [1.0, 2.0, 3.0]


def test_a_restarted_gateway_sync_re_registers_the_znodes_with_sasl_acls(fleet, knox_reader):
    fleet_now = wait_for(lambda: fleet.routed_as_fleet(knox_reader), 240, "the fleet routed", ignore=NOT_YET)
    owners = {n: knox_reader.exists(f"{fleet.zk_path}/{n}").ephemeralOwner for n in knox_reader.get_children(fleet.zk_path)}
    fleet.replica.kill()
    # Its session ends (zk_session_timeout_s 4 s) and its ephemeral znodes with it.
    wait_for(lambda: not fleet.znodes(knox_reader), 60, "the dead replica's znodes gone")
    restarted_at = time.monotonic()
    fleet.start_gateway_sync()
    wait_for(lambda: fleet.routed_as_fleet(knox_reader) == fleet_now, 120, "the znodes back", ignore=NOT_YET)
    print(f"\ngateway-sync restarted -> znodes re-registered {time.monotonic() - restarted_at:.1f} s")
    new_owners = {n: knox_reader.exists(f"{fleet.zk_path}/{n}").ephemeralOwner
                  for n in knox_reader.get_children(fleet.zk_path)}
    assert set(new_owners) == set(owners) and not set(new_owners.values()) & set(owners.values())
    assert_only_sasl_principals_change(fleet, knox_reader)


def test_with_the_kdc_down_the_fleet_serves_and_a_replacement_stages_with_its_token(fleet, knox_reader):
    wait_for(lambda: fleet.routed_as_fleet(knox_reader), 240, "the fleet routed", ignore=NOT_YET)
    fleet.stack.kill("kdc")
    try:
        assert subprocess.run(["kinit", "-k", "-t", str(fleet.stack.kdc.keytab("bob")), kdc.principal("bob")],
                              env=dict(os.environ, **client_env(fleet.stack, fleet.caches, None)),
                              capture_output=True, timeout=30).returncode != 0  # the KDC is really gone
        assert infer_through_haproxy(fleet.stack) == [1.0, 2.0, 3.0]
        _, fresh, took_s = replace_one(fleet)
        print(f"\nKDC down: killed Triton container -> ready replacement {took_s:.1f} s")
        assert "using an HDFS delegation token" in agent_log(fleet.stack, fleet.deployment.app_id,
                                                             fresh["instance_id"])
        wait_for(lambda: fleet.routed_as_fleet(knox_reader), 120, "the replacement routed", ignore=NOT_YET)
        assert infer_through_haproxy(fleet.stack) == [1.0, 2.0, 3.0]
    finally:
        fleet.stack.start("kdc")
