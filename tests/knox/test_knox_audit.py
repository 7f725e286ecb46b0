"""What the Knox enforcement point puts in the audit, all real: a Knox gateway with TARN's
extension (HeaderPreAuth trusted from 127.0.0.1-3), tarn-authz auditing to its log4j-format file,
a tritonserver found in ZooKeeper. Clients connect from 127.0.0.2 and 127.0.0.3 while Knox reaches
authz from 127.0.0.1, so the audited cliIP shows whose address it is."""
from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from kazoo.client import KazooClient

from tests.knox.support import USER_HEADER, AuthzProcess, KnoxGateway, build_knox, topology
from tests.knox.test_knox_e2e import znode_record
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration
TOPOLOGY = "tarn"
SUMMARY_MS = 1000
WAIT_S = 30.0


class AuditedAuthz(AuthzProcess):
    def __init__(self, workdir, redis_url: str) -> None:
        super().__init__(workdir)
        self.redis_url = redis_url
        self.audit_log = workdir / "audit" / "ranger-audit.log"

    def env(self):
        return {**super().env(), "TARN_AUTHZ_RANGER_AUDIT": "true", "TARN_AUTHZ_AUDIT_LOG": str(self.audit_log),
                "TARN_AUTHZ_REDIS_URL": self.redis_url}

    def events(self, client_ip: str) -> list:
        if not self.audit_log.exists():
            return []
        return [e for e in map(json.loads, self.audit_log.read_text().splitlines()) if e.get("cliIP") == client_ip]


@pytest.fixture(scope="module")
def knox_audit(stack, triton_server, tmp_path_factory):
    build_knox()
    tmp = tmp_path_factory.mktemp("knox-audit")
    authz = AuditedAuthz(tmp / "authz", stack.env["REDIS_URL"]).start()
    zk = KazooClient(hosts=stack.env["ZK_HOSTS"])
    zk.start(timeout=15)
    base = f"/tarn-knox-audit-{uuid.uuid4().hex[:8]}"
    namespace = f"{base}/services/triton"
    zk.create(f"{namespace}/instances/{triton_server.http_host_port}", znode_record(triton_server, "container_a"),
              ephemeral=True, makepath=True)
    knox = KnoxGateway(tmp / "knox")
    try:
        knox.prepare({TOPOLOGY: topology(stack.env["ZK_HOSTS"], namespace, authz.url, cache_ttl_ms=60_000,
                                         preauth_addresses="127.0.0.1,127.0.0.2,127.0.0.3",
                                         authz_params={"authz.audit.summary.ms": str(SUMMARY_MS)})})
        knox.start(f"/{TOPOLOGY}/triton/v2/health/ready", {USER_HEADER: "alice"})
        yield knox, authz
    finally:
        knox.stop()
        authz.stop()
        zk.delete(base, recursive=True)
        zk.stop()
        zk.close()


def _get(knox: KnoxGateway, path: str, user: str, source: str, times: int) -> list:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), headers={USER_HEADER: user},
                      timeout=60) as client:
        return [client.get(f"{knox.url}/{TOPOLOGY}/triton{path}").status_code for _ in range(times)]


def test_knox_audits_the_clients_address_and_its_cache_hits_as_summaries_adding_up_to_every_request(knox_audit):
    knox, authz = knox_audit
    assert _get(knox, "/v2/models/add_sub/config", "alice", "127.0.0.2", 1) == [200]
    first = wait_for(lambda: authz.events("127.0.0.2") or None, WAIT_S, "the audit event with cliIP 127.0.0.2")
    assert [(e["reqUser"], e["resource"], e["access"], e["result"], e["event_count"]) for e in first] == \
        [("alice", "add_sub", "metadata", 1, 1)]

    requests = 50
    assert _get(knox, "/v2/models/add_sub/config", "alice", "127.0.0.3", requests) == [200] * requests

    def counted() -> int:
        return sum(e["event_count"] for e in authz.events("127.0.0.3"))

    wait_for(lambda: counted() >= requests, WAIT_S, f"event_count summing to {requests}", interval_s=0.1)
    time.sleep(3 * SUMMARY_MS / 1000)  # nothing counted twice: the sum stays at N
    found = authz.events("127.0.0.3")
    assert counted() == requests
    assert {(e["reqUser"], e["resource"], e["access"], e["result"], e["policy"]) for e in found} == \
        {("alice", "add_sub", "metadata", 1, 1)}
    # One question to authz (the cache is Knox-wide), the other hits summarised.
    assert len(found) < requests / 3 and max(e["event_count"] for e in found) > 1
    assert not authz.events("127.0.0.1")  # Knox's own address never stands in for the client's
