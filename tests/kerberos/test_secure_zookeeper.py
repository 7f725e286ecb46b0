"""ZooKeeper with SASL/GSSAPI on the real KDC: a znode with a sasl ACL takes writes from
its principal only; without a ticket a client still connects and reads what the ACL lets it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from tarn_gateway_sync.zookeeper import parse_acl

from .conftest import client_env, kdc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SASL = {"mechanism": "GSSAPI", "service": "zookeeper"}


def _client(hosts: str, sasl: bool) -> KazooClient:
    client = KazooClient(hosts=hosts, sasl_options=SASL if sasl else None)
    client.start(timeout=30)
    return client


@pytest.fixture
def znode(secure_stack, login):
    """A znode alice owns (sasl:alice@REALM:cdrwa) that anybody may read, under a parent
    with the same ACL (deleting or adding a child is the parent's ACL's word)."""
    login("alice")
    alice = _client(secure_stack.env["ZK_HOSTS"], sasl=True)
    parent = f"/tarn-krb-{uuid.uuid4().hex[:8]}"
    acl = parse_acl([f"sasl:{kdc.principal('alice')}:cdrwa", "world:anyone:r"])
    alice.create(parent, b"", acl=acl)
    alice.create(f"{parent}/instance", b"v1", acl=acl)
    yield alice, f"{parent}/instance"
    alice.delete(parent, recursive=True)
    alice.stop()
    alice.close()


def test_an_unauthenticated_client_cannot_change_a_sasl_acl_znode_its_principal_can(secure_stack, login, znode):
    alice, path = znode
    alice.set(path, b"v2")
    assert alice.get(path)[0] == b"v2"

    login(None)
    anonymous = _client(secure_stack.env["ZK_HOSTS"], sasl=False)
    try:
        assert anonymous.get(path)[0] == b"v2"
        with pytest.raises(NoAuthError):
            anonymous.set(path, b"intruder")
        with pytest.raises(NoAuthError):
            anonymous.delete(path)
        with pytest.raises(NoAuthError):
            anonymous.create(f"{path}-beside", b"x")
    finally:
        anonymous.stop()
        anonymous.close()
    assert alice.get(path)[0] == b"v2"


# bob in a process of his own (as every real client is): MIT Kerberos in one process does
# not reliably switch principals while another SASL session of that process is open.
BOB = """
import json, os, sys, uuid
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl
client = KazooClient(hosts=os.environ["ZK_HOSTS"], sasl_options={"mechanism": "GSSAPI", "service": "zookeeper"})
client.start(timeout=30)
own = "/tarn-krb-bob-" + uuid.uuid4().hex[:8]
client.create(own, b"b1", acl=[make_acl("sasl", sys.argv[2], all=True)])
client.set(own, b"b2")  # bob did authenticate: a znode of his own takes his writes
client.delete(own)
try:
    client.set(sys.argv[1], b"bob was here")
    print(json.dumps("changed"))
except NoAuthError:
    print(json.dumps("refused"))
"""


def test_another_principal_with_a_valid_ticket_cannot_change_it_either(secure_stack, znode, tmp_path):
    alice, path = znode
    env = dict(os.environ, ZK_HOSTS=secure_stack.env["ZK_HOSTS"], **client_env(secure_stack, tmp_path, "bob"))
    result = subprocess.run([sys.executable, "-c", BOB, path, kdc.principal("bob")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == "refused"
    assert alice.get(path)[0] == b"v1"
