"""gateway-sync's ZooKeeper adapter, configured as its settings configure it, on the SASL
ZooKeeper: it logs in with its own keytab and writes znodes with sasl ACLs; a reader with
Knox's principal reads them; nobody else reads or changes them."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from tarn_gateway_sync.plan import CreateZnode
from tarn_gateway_sync.settings import GatewaySyncSettings
from tarn_gateway_sync.zookeeper import Ensemble, parse_acl

from .conftest import client_env, kdc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
GATEWAY_SYNC = kdc.principal("tarn-gateway-sync/localhost")
KNOX = kdc.principal("knox/localhost")


# Knox's URL manager is a process of its own with its own keytab: so is this reader.
KNOX_READER = """
import json, os, sys
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
path, znode = sys.argv[1:]
client = KazooClient(hosts=os.environ["ZK_HOSTS"], sasl_options={"mechanism": "GSSAPI"})
client.start(timeout=30)
seen = {"data": client.get(znode)[0].decode(), "children": client.get_children(path), "refused": []}
for name, change in (("set", lambda: client.set(znode, b"http://evil:1")),
                     ("create", lambda: client.create(path + "/host-evil:1", b"x"))):
    try:
        change()
    except NoAuthError:
        seen["refused"].append(name)
print(json.dumps(seen))
"""


def _knox_reads(stack, cache_dir, path: str, znode: str) -> dict:
    env = dict(os.environ, ZK_HOSTS=stack.env["ZK_HOSTS"], **client_env(stack, cache_dir, "knox"))
    result = subprocess.run([sys.executable, "-c", KNOX_READER, path, znode], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_gateway_sync_writes_sasl_acl_znodes_that_only_knox_reads_and_nobody_else_changes(
        secure_stack, login, tmp_path):
    hosts = secure_stack.env["ZK_HOSTS"]
    settings = GatewaySyncSettings(zk_hosts=hosts, haproxy_sockets=secure_stack.env["HAPROXY_SOCKET"],
                                   zk_sasl_mechanism="GSSAPI", zk_acl=f"sasl:{GATEWAY_SYNC}:cdrwa,sasl:{KNOX}:r")
    path = f"/tarn-krb-knox-{uuid.uuid4().hex[:8]}"
    znode = f"{path}/host-127.0.0.1:8000"

    async def scenario() -> None:
        login("gateway-sync")
        ensemble = Ensemble(settings.zk_hosts, sasl_options=settings.zk_sasl_options(),
                            acl=parse_acl(settings.zk_acl))
        await ensemble.start()
        try:
            await ensemble.apply(path, [CreateZnode("host-127.0.0.1:8000", b"http://127.0.0.1:8000")])
            assert [a.id.id for a in ensemble.client.get_acls(znode)[0]] == [GATEWAY_SYNC, KNOX]

            knox = await asyncio.to_thread(_knox_reads, secure_stack, tmp_path, path, znode)
            assert knox == {"data": "http://127.0.0.1:8000", "children": ["host-127.0.0.1:8000"],
                            "refused": ["set", "create"]}
            login(None)
            anonymous = KazooClient(hosts=hosts)
            anonymous.start(timeout=30)
            try:
                for change in (lambda: anonymous.get(znode), lambda: anonymous.set(znode, b"http://evil:1"),
                               lambda: anonymous.create(f"{path}/host-evil:1", b"x")):
                    with pytest.raises(NoAuthError):
                        change()
            finally:
                anonymous.stop()
                anonymous.close()
            assert ensemble.client.get(znode)[0] == b"http://127.0.0.1:8000"
            ensemble.client.delete(path, recursive=True)
        finally:
            await ensemble.stop()

    asyncio.run(scenario())
