"""gateway-sync's Kerberos faults on the session's stack, without a deployment: without its
ticket it stops at once with one line naming the fix, another principal's keytab is refused
naming who may write, and one started while the KDC is down says why and leads once it answers.
(The faults of a deployment, a container kill, a gateway-sync restart and the KDC down while a
fleet serves, run on the session's one deployment: test_demo_kerberos.py.)"""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tarn_gateway_sync import sasl_login
from tests.gateway_sync.support import Replica, settings_for
from tests.support.polling import wait_for

from .conftest import client_env, kdc

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
GATEWAY_SYNC = kdc.principal("tarn-gateway-sync/localhost")
KNOX = kdc.principal("knox/localhost")
ZK_ACL = [f"sasl:{GATEWAY_SYNC}:cdrwa", f"sasl:{KNOX}:r"]


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
