"""authz never goes quietly stale: a real tarn-authz polling the Ranger replay server (payloads written
by Ranger's own classes, tests/authz/replay) is handed a policy set it cannot evaluate. It keeps
deciding with the last good set and says so (/healthz degraded with the reason and the age, the
refusal counter and the age gauge), turns every decision to deny once the policies in force pass
the maximum age (the reason in the answer and in the audit record), and recovers with the next good
set."""
from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.authz.replay.server import RangerReplay
from tests.authz.servers import ServerThread
from tests.authz.support import GATEWAY, PLAIN_TOKEN, SERVICE, start_authz  # noqa: F401
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration

MAX_AGE_S = 6.0  # long enough to look at the degraded state first on a busy machine
WAIT_S = 15.0


@pytest.fixture
def replay():
    ranger = RangerReplay()
    ranger.publish(SERVICE, "v2")
    with ServerThread(ranger.app()) as server:
        ranger.url = server.url
        yield ranger


def _decide(client: httpx.Client, user: str, model: str) -> dict:
    response = client.get("/authorize", params={"model": model, "action": "infer", "format": "json"},
                          headers={**GATEWAY, "X-TARN-User": user})
    assert response.status_code == 200, response.text
    return response.json()


def _health(client: httpx.Client) -> tuple[int, dict]:
    response = client.get("/healthz")
    return response.status_code, response.json()


def _metric(client: httpx.Client, name: str) -> float | None:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {PLAIN_TOKEN}"}).text
    found = re.search(rf'^{name}{{service="{SERVICE}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def _when_status(client: httpx.Client, status: str) -> dict:
    return wait_for(lambda: (lambda h: h[1] if h[1]["status"] == status else None)(_health(client)), WAIT_S,
                    f"/healthz to say {status}", interval_s=0.05)


def test_refused_policy_set_degrades_then_fails_closed_then_recovers(replay, tmp_path, start_authz,  # noqa: F811
                                                                      redis_url):
    audit_log = tmp_path / "audit" / "ranger-audit.log"
    server = start_authz(ranger_url=replay.url, max_policy_age_s=MAX_AGE_S, ranger_audit=True,
                         redis_url=redis_url, audit_log=audit_log)
    with httpx.Client(base_url=server.url) as client:
        assert _health(client)[0] == 200 and _health(client)[1]["status"] == "ok"
        assert _decide(client, "erin", "mistral-7b")["allowed"] is True  # policy 5, version 8

        # version 9 revokes erin's access and adds a policy with a custom condition: refused, not applied
        replay.publish(SERVICE, "v3-refused-condition")
        body = _when_status(client, "degraded")
        described = body["services"][SERVICE]
        assert described["degraded"] is True and described["refused"] is True and described["stale"] is False
        assert "custom condition 'ip-range'" in described["last_error"]
        assert described["policy_version"] == 8 and described["max_policy_age_s"] == MAX_AGE_S
        assert 0 <= described["policy_age_s"] < MAX_AGE_S
        still = _decide(client, "erin", "mistral-7b")
        assert still["allowed"] is True and still["policy_version"] == 8  # the last good set still decides
        assert _metric(client, "tarn_authz_policy_refusals_total") >= 1
        assert _metric(client, "tarn_authz_policy_age_seconds") >= 0
        assert _metric(client, "tarn_authz_policies_degraded") == 1

        # past the maximum age every decision is denied, with the reason
        body = wait_for(lambda: (lambda h: h if h[0] == 503 else None)(_health(client)), MAX_AGE_S + WAIT_S,
                        "/healthz to say unhealthy once the policies are too old", interval_s=0.1)[1]
        described = body["services"][SERVICE]
        assert body["status"] == "unhealthy" and described["stale"] is True
        assert described["policy_age_s"] > MAX_AGE_S
        denied = _decide(client, "alice", "llama-7b")  # allowed by policy 1 in every version
        assert denied["allowed"] is False and denied["policy_id"] == -1
        assert "fail closed" in denied["reason"] and "custom condition 'ip-range'" in denied["reason"]
        assert _decide(client, "erin", "mistral-7b")["allowed"] is False
        assert _metric(client, "tarn_authz_policies_stale") == 1

        def stale_denial_audited():
            lines = audit_log.read_text().splitlines() if audit_log.exists() else []
            return next((e for e in map(json.loads, lines)
                         if e["reqUser"] == "alice" and e["result"] == 0 and "fail closed" in e.get("reason", "")),
                        None)

        event = wait_for(stale_denial_audited, WAIT_S, "the fail-closed denial in the audit log", interval_s=0.1)
        assert event["policy"] == -1 and event["policy_version"] == 8 and "custom condition" in event["reason"]

        # version 10 drops the conditioned policy: accepted, fresh again, and erin's revocation applies
        replay.publish(SERVICE, "v4")
        body = _when_status(client, "ok")
        described = body["services"][SERVICE]
        assert described["policy_version"] == 10 and described["last_error"] is None
        assert described["degraded"] is False and described["stale"] is False and described["policy_age_s"] < MAX_AGE_S
        assert _decide(client, "alice", "llama-7b")["allowed"] is True
        revoked = _decide(client, "erin", "mistral-7b")
        assert revoked["allowed"] is False and revoked["reason"] == "no policy matched: denied"
        assert _metric(client, "tarn_authz_policies_degraded") == 0 and _metric(client, "tarn_authz_policies_stale") == 0


def test_tag_based_policies_are_refused_loudly(replay, tmp_path, start_authz):  # noqa: F811
    replay.publish(SERVICE, "v4")
    server = start_authz(ranger_url=replay.url, max_policy_age_s=MAX_AGE_S)
    with httpx.Client(base_url=server.url) as client:
        assert _health(client)[1]["status"] == "ok"
        replay.publish(SERVICE, "v5-refused-tags")  # a linked tag service with a tag deny
        described = _when_status(client, "degraded")["services"][SERVICE]
        assert described["refused"] is True and described["policy_version"] == 10
        assert "tag-based policies are not supported (tag service 'triton_tags', 1 policies)" in described["last_error"]
        assert _metric(client, "tarn_authz_policy_refusals_total") >= 1


def test_refused_first_download_leaves_nothing_loaded_and_unhealthy(replay, tmp_path, start_authz):  # noqa: F811
    replay.publish(SERVICE, "v5-refused-tags")
    server = start_authz(ranger_url=replay.url)
    with httpx.Client(base_url=server.url) as client:
        status, body = _health(client)
        described = body["services"][SERVICE]
        assert status == 503 and described["loaded"] is False and described["refused"] is True
        assert "tag-based policies" in described["last_error"] and described["policy_age_s"] is None
        answer = _decide(client, "alice", "llama-7b")
        assert answer["allowed"] is False and "no policies loaded" in answer["reason"]
