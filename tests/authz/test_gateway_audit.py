"""What the HAProxy enforcement point puts in the audit, all real: HAProxy 2.6 with the Lua
action, tarn-authz auditing to its log4j-format file, tritonserver behind. The clients connect
from other loopback addresses (127.0.0.2, ...) than HAProxy uses to reach authz (127.0.0.1), so
the audited cliIP shows whose address it is. Also the summary endpoint on its own (bad input)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tarn_authz.app import SERVER_OPTIONS, create_app
from tests.authz.servers import ServerThread
from tests.authz.support import GATEWAY, GATEWAY_TOKEN, PLAIN_TOKEN, settings_for
from tests.authz.test_haproxy_pep import PASSWORDS, POLICIES, spoe_options
from tests.support.polling import wait_for
from tests.support.stack_fixture import stack  # noqa: F401
from tests.support.haproxy_authz import haproxy_authz

pytestmark = pytest.mark.integration
CACHE_TTL_S = 60.0  # every repeat is a cache hit (per HAProxy thread: the first on each asks authz)
SUMMARY_MS = 1000
# The policies of test_haproxy_pep, and bob denied add_sub's metadata by an audited policy.
DENY_BOB = {"id": 4, "name": "p4", "isEnabled": True, "isAuditEnabled": True,
            "resources": {"model": {"values": ["add_sub"]}},
            "denyPolicyItems": [{"users": ["bob"], "accesses": [{"type": "metadata", "isAllowed": True}]}]}
# A user whose name holds the separator of HAProxy's hit counts (client|user|action|model).
PIPE_USER = "dave|infer"
AUDITED_PASSWORDS = {**PASSWORDS, PIPE_USER: "dave-pw"}
AUDITED_POLICIES = {**POLICIES, "policies": POLICIES["policies"] + [DENY_BOB, {
    "id": 6, "name": "p6", "isEnabled": True, "isAuditEnabled": True, "resources": {"model": {"values": ["add_sub"]}},
    "policyItems": [{"users": [PIPE_USER], "accesses": [{"type": "metadata", "isAllowed": True}]}]}]}
WAIT_S = 30.0


class AuditedGateway:
    def __init__(self, url: str, authz: ServerThread, audit_log: Path, misses: str) -> None:
        self.url, self.authz, self.audit_log, self.misses = url, authz, audit_log, misses

    def get(self, path: str, user: str, source: str, times: int = 1, method: str = "GET") -> list:
        """``times`` requests on one keep-alive connection from ``source``: their status codes."""
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, auth=(user, AUDITED_PASSWORDS[user]), timeout=30) as client:
            return [client.request(method, self.url + path, json={} if method == "POST" else None).status_code
                    for _ in range(times)]

    def events(self, client_ip: str) -> list:
        if not self.audit_log.exists():
            return []
        lines = self.audit_log.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e.get("cliIP") == client_ip]


@pytest.fixture(scope="module", params=["lua", "spoe"])
def audited(request, triton_server, stack, tmp_path_factory):
    """Misses asked by the Lua action over HTTP, or of authz's SPOE agent."""
    tmp = tmp_path_factory.mktemp(f"haproxy-audit-{request.param}")
    (tmp / "policies").mkdir()
    (tmp / "policies" / "triton_prod.json").write_text(json.dumps(AUDITED_POLICIES))
    audit_log = tmp / "audit" / "ranger-audit.log"
    settings, render_options = spoe_options(tmp, request.param)
    authz = ServerThread(create_app(settings_for(tmp, ranger_audit=True, audit_log=audit_log,
                                                 redis_url=stack.env["REDIS_URL"], **settings)),
                         **SERVER_OPTIONS).start()
    try:
        with haproxy_authz(tmp, AUDITED_PASSWORDS, "haproxy with authz in front of triton", authz_url=authz.url,
                           gateway_token=GATEWAY_TOKEN, servers=[f"server triton1 {triton_server.http_host_port} check"],
                           cache_ttl_s=CACHE_TTL_S, audit_summary_ms=SUMMARY_MS, **render_options) as url:
            yield AuditedGateway(url, authz, audit_log, request.param)
    finally:
        authz.stop()


def test_the_audited_client_address_is_the_end_clients_not_haproxys(audited):
    assert audited.get("/v2/models/add_sub/config", "alice", "127.0.0.2") == [200]
    assert audited.get("/v2/models/add_sub/config", "bob", "127.0.0.2") == [403]
    found = wait_for(lambda: (lambda e: e if len(e) >= 2 else None)(audited.events("127.0.0.2")), WAIT_S,
                     "two audit events with cliIP 127.0.0.2", interval_s=0.05)
    assert {(e["reqUser"], e["result"]) for e in found} == {("alice", 1), ("bob", 0)}
    assert not audited.events("127.0.0.1")  # HAProxy's own address never stands in for the client's


@pytest.mark.parametrize("user,source,allowed,policy", [("alice", "127.0.0.3", 1, 1), ("bob", "127.0.0.4", 0, 4),
                                                        (PIPE_USER, "127.0.0.6", 1, 6)])
def test_cache_hits_are_audited_as_summaries_whose_counts_add_up_to_every_request(audited, user, source, allowed,
                                                                                   policy):
    requests = 60
    assert audited.get("/v2/models/add_sub/config", user, source, requests) == [200 if allowed else 403] * requests

    def counted() -> int:
        return sum(e["event_count"] for e in audited.events(source))

    wait_for(lambda: counted() >= requests, WAIT_S, f"event_count summing to {requests}", interval_s=0.05)
    time.sleep(3 * SUMMARY_MS / 1000)  # nothing counted twice: the sum stays at N
    found = audited.events(source)
    assert counted() == requests
    assert {(e["reqUser"], e["resource"], e["access"], e["result"]) for e in found} == \
        {(user, "add_sub", "metadata", allowed)}
    assert {e["policy"] for e in found} == {policy}
    summaries = [e for e in found if e.get("additional_info")]
    if audited.misses == "spoe" and not allowed:  # the agent decides every deny: one event each
        assert not summaries and len(found) == requests
        return
    assert summaries and max(e["event_count"] for e in summaries) > 1
    assert all(json.loads(e["additional_info"]) == {"served_from": "gateway cache"} for e in summaries)
    assert len(found) < requests / 3  # summarised, not one event per request


def test_list_decisions_served_from_the_cache_for_the_index_are_audited_per_model(audited):
    requests = 20
    assert audited.get("/v2/repository/index", "carol", "127.0.0.5", requests, "POST") == [200] * requests

    def counted() -> dict:
        totals: dict = {}
        for e in audited.events("127.0.0.5"):
            totals[(e["resource"], e["access"])] = totals.get((e["resource"], e["access"]), 0) + e["event_count"]
        return totals

    expected = {("add_sub", "list"): requests, ("identity", "list"): requests}
    wait_for(lambda: counted() == expected, WAIT_S, lambda: f"list events counting {expected}, not {counted()}")


def test_the_summary_endpoint_takes_the_gateway_token_only_and_refuses_bad_entries(audited):
    entry = {"user": "alice", "model": "add_sub", "action": "metadata", "allowed": True, "client": "127.0.0.9",
             "count": 3, "first_ms": 1_700_000_000_000, "last_ms": 1_700_000_000_500}
    url = audited.authz.url + "/audit/summary"
    plain = httpx.post(url, json={"entries": [entry]}, headers={"X-TARN-Token": PLAIN_TOKEN})
    assert plain.status_code == 403
    assert httpx.post(url, json={"entries": [entry]}, headers={"X-TARN-Token": "wrong"}).status_code == 401
    for bad in ({"action": "fly"}, {"client": "not-an-address"}, {"count": 0}, {"last_ms": 1}):
        answer = httpx.post(url, json={"entries": [entry, {**entry, **bad}]}, headers=GATEWAY)
        assert answer.status_code in (400, 422), (bad, answer.text)
    time.sleep(1.5)  # the audit writer runs every second at most
    assert not audited.events("127.0.0.9")  # all or nothing: the good entry beside a bad one is not recorded
    taken = httpx.post(url, json={"entries": [entry]}, headers=GATEWAY)
    assert taken.json() == {"received": 1, "audited": 1}
    found = wait_for(lambda: audited.events("127.0.0.9") or None, WAIT_S, "the summary in the audit log")
    assert [(e["event_count"], e["event_dur_ms"], e["evtTime"]) for e in found] == \
        [(3, 500, "2023-11-14 22:13:20.000")]
