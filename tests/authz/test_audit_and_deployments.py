"""Audit (--ranger-audit) to the tarn:audit stream and a log4j-format JSON-lines file, and
the Ranger services named by deployment records in Redis; real Redis from the local stack."""
from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
import redis

from tarn_shared import events
from tarn_shared.deployments import put_record
from tarn_shared.streams import connect
from tests.authz.audit_format import RANGER_AUDIT_FIELDS
from tests.authz.support import GATEWAY, PLAIN_TOKEN, SERVICE, start_authz, write_policy_dir  # noqa: F401
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration

WAIT_S = 10.0
POLL_S = 0.05


def _audit_entries(redis_url: str) -> list[dict]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(fields[b"event"]) for _, fields in client.xrange(events.audit_stream())]
    finally:
        client.close()


def test_audited_decisions_reach_the_stream_and_the_log4j_file(tmp_path, start_authz, redis_url):  # noqa: F811
    write_policy_dir(tmp_path / "policies")
    audit_log = tmp_path / "audit" / "ranger-audit.log"
    before = len(_audit_entries(redis_url))
    server = start_authz(ranger_audit=True, ranger_app_id="tarn-gw", redis_url=redis_url, audit_log=audit_log)
    with httpx.Client(base_url=server.url) as client:
        for user, model in (("alice", "llama-7b"), ("bob", "llama-7b")):
            response = client.get("/authorize", params={"model": model, "action": "infer"},
                                  headers={**GATEWAY, "X-TARN-User": user})
            assert response.status_code == 200
    entries = wait_for(lambda: (lambda e: e if len(e) >= before + 2 else None)(_audit_entries(redis_url)[before:]),
                       WAIT_S, "two audit events on tarn:audit", interval_s=POLL_S)
    decoded = [events.decode({"event": json.dumps(e)}) for e in entries]
    assert [(d.reqUser, d.result, d.policy) for d in decoded] == [("alice", 1, 1), ("bob", 0, -1)]
    assert {d.agent for d in decoded} == {"tarn-gw"}
    assert {(d.repo, d.resource, d.access, d.resType) for d in decoded} == {(SERVICE, "llama-7b", "infer", "model")}
    lines = wait_for(lambda: audit_log.exists() and audit_log.read_text().splitlines(), WAIT_S, "the audit log",
                     interval_s=POLL_S)
    first = json.loads(lines[0])
    # Ranger's log4j destination writes AuthzAuditEvent as Gson does: its field names, in order, no nulls.
    assert list(first) == [f for f in RANGER_AUDIT_FIELDS if f in first]
    assert set(first) <= set(RANGER_AUDIT_FIELDS)
    assert first["reqUser"] == "alice" and first["agent"] == "tarn-gw" and first["result"] == 1
    assert first["repoType"] == 1001 and first["policy_version"] == 7
    assert len(first["evtTime"]) == len("2026-06-01 12:00:00.000")


def test_the_audited_client_address_is_what_a_trusted_gateway_forwards_and_never_a_client_header(
        tmp_path, start_authz, redis_url):  # noqa: F811
    write_policy_dir(tmp_path / "policies")
    before = len(_audit_entries(redis_url))
    server = start_authz(ranger_audit=True, redis_url=redis_url)
    asked = [  # (headers, the cliIP audited)
        ({**GATEWAY, "X-TARN-User": "alice", "X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"),
        ({**GATEWAY, "X-TARN-User": "alice", "X-Forwarded-For": "198.51.100.1, 2001:db8::7"}, "2001:db8::7"),
        ({**GATEWAY, "X-TARN-User": "alice", "X-Forwarded-For": "not-an-address"}, "127.0.0.1"),
        ({"X-TARN-Token": PLAIN_TOKEN, "X-Forwarded-For": "203.0.113.66"}, "127.0.0.1"),  # not a gateway
    ]
    with httpx.Client(base_url=server.url) as client:
        for headers, _ in asked:
            answer = client.get("/authorize", params={"model": "llama-7b", "action": "infer"}, headers=headers)
            assert answer.status_code == 200, answer.text
    entries = wait_for(lambda: (lambda e: e if len(e) >= len(asked) else None)(_audit_entries(redis_url)[before:]),
                       WAIT_S, "one audit event per question", interval_s=POLL_S)
    assert [e["cliIP"] for e in entries] == [expected for _, expected in asked]


def test_no_audit_without_the_flag(tmp_path, start_authz, redis_url):  # noqa: F811
    write_policy_dir(tmp_path / "policies")
    audit_log = tmp_path / "audit.log"
    server = start_authz(ranger_audit=False, redis_url=redis_url, audit_log=audit_log)
    with httpx.Client(base_url=server.url) as client:
        client.get("/authorize", params={"model": "llama-7b", "action": "infer"},
                   headers={**GATEWAY, "X-TARN-User": "alice"})
    time.sleep(0.5)
    assert not audit_log.exists()


def test_services_named_by_deployment_records_are_served(tmp_path, start_authz, redis_url, deployment):  # noqa: F811
    write_policy_dir(tmp_path / "policies")
    write_policy_dir(tmp_path / "policies", "v2", service="triton_dev")
    server = start_authz(redis_url=redis_url, serve_deployments=True, deployments_interval_s=0.2)

    async def publish(service):
        client = connect(redis_url)
        try:
            await put_record(client, events.DeploymentRecord(deployment=deployment, app_id="application_1_0001",
                                                             ranger_service=service))
        finally:
            await client.aclose()

    asyncio.run(publish("triton_dev"))
    with httpx.Client(base_url=server.url) as client:
        health = wait_for(lambda: (lambda h: h if h["services"].get("triton_dev", {}).get("loaded") else None)(
            client.get("/healthz").json()), WAIT_S, "triton_dev to be served", interval_s=POLL_S)
        assert health["services"]["triton_dev"]["deployments"] == [deployment]
        assert health["services"]["triton_dev"]["policy_version"] == 8
        by_deployment = client.get("/authorize", params={"model": "mistral-7b", "action": "infer",
                                                         "deployment": deployment},
                                   headers={**GATEWAY, "X-TARN-User": "erin"})
        default = client.get("/authorize", params={"model": "mistral-7b", "action": "infer"},
                             headers={**GATEWAY, "X-TARN-User": "erin"})
        assert (by_deployment.text, default.text) == ("true", "false")
        asyncio.run(publish(None))  # the deployment no longer names a Ranger service: dropped
        wait_for(lambda: "triton_dev" not in client.get("/healthz").json()["services"], WAIT_S,
                 "triton_dev to be dropped", interval_s=POLL_S)
        assert SERVICE in client.get("/healthz").json()["services"]


@pytest.mark.hadoop
def test_audit_reaches_hdfs_in_rangers_layout_and_survives_hdfs_refusing_for_a_while(
        tmp_path, start_authz, hadoop_cluster, webhdfs):  # noqa: F811
    write_policy_dir(tmp_path / "policies")
    directory = f"/tarn-test/audit-{uuid.uuid4().hex[:8]}"
    webhdfs.makedirs(directory)
    webhdfs.set_permission(directory, "555")  # read only: the first writes are refused
    server = start_authz(ranger_audit=True, ranger_app_id="tarn-gw", audit_hdfs_url=hadoop_cluster.webhdfs_url,
                         audit_hdfs_dir=directory, audit_hdfs_user="ranger")
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    path = f"{directory}/tarn-gw/{day}/tarn-gw_ranger_audit_{socket.gethostname()}.log"
    with httpx.Client(base_url=server.url) as client:
        def ask(user):
            assert client.get("/authorize", params={"model": "llama-7b", "action": "infer"},
                              headers={**GATEWAY, "X-TARN-User": user}).status_code == 200
        ask("alice")
        wait_for(lambda: "tarn_authz_audit_events_total{destination=\"hdfs\",outcome=\"failed\"}" in
                 client.get("/metrics", headers=GATEWAY).text, WAIT_S, "a refused HDFS write, counted")
        webhdfs.set_permission(directory, "777")
        ask("bob")
    lines = wait_for(lambda: (lambda t: t if t and len(t.splitlines()) >= 2 else None)(_read(webhdfs, path)),
                     WAIT_S * 3, f"both events in {path}", interval_s=0.2)
    written = [json.loads(line) for line in lines.splitlines()]
    assert [(e["reqUser"], e["result"], e["agent"]) for e in written] == [("alice", 1, "tarn-gw"), ("bob", 0, "tarn-gw")]
    assert list(written[0]) == [f for f in RANGER_AUDIT_FIELDS if f in written[0]]  # the log4j line's shape


def _read(webhdfs, path: str) -> str:
    if webhdfs.status(path, strict=False) is None:
        return ""
    with webhdfs.read(path, encoding="utf-8") as reader:
        return reader.read()
