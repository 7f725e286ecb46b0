"""ZooKeeper with SASL/GSSAPI on the real KDC: a znode with a sasl ACL takes writes from
its principal only; without a ticket a client still connects and reads what the ACL lets it."""
from __future__ import annotations

import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from tarn_gateway_sync.zookeeper import parse_acl

from .conftest import kdc

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


def test_another_principal_with_a_valid_ticket_cannot_change_it_either(secure_stack, login, znode):
    alice, path = znode
    login("bob")
    bob = _client(secure_stack.env["ZK_HOSTS"], sasl=True)
    own = f"/tarn-krb-bob-{uuid.uuid4().hex[:8]}"
    try:
        # bob did authenticate: a znode of his own takes his writes.
        bob.create(own, b"b1", acl=parse_acl([f"sasl:{kdc.principal('bob')}:cdrwa"]))
        bob.set(own, b"b2")
        with pytest.raises(NoAuthError):
            bob.set(path, b"bob was here")
    finally:
        bob.delete(own)
        bob.stop()
        bob.close()
    assert alice.get(path)[0] == b"v1"
