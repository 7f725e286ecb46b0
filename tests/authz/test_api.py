"""tarn-authz's HTTP API on a real server, with policies from a local folder holding
payloads Ranger's own classes wrote (replay/payloads)."""
from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.authz.support import GATEWAY, PLAIN_TOKEN, SERVICE, start_authz, write_policy_dir  # noqa: F401
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def authz(tmp_path, start_authz):  # noqa: F811
    write_policy_dir(tmp_path / "policies")
    server = start_authz()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def ask(client, headers=None, **params):
    return client.get("/authorize", params=params, headers={**GATEWAY, **(headers or {})})


def _described(client) -> dict:
    return client.get("/healthz").json()["services"][SERVICE]


def test_answers_true_or_false_as_text(authz):
    yes = ask(authz, {"X-TARN-User": "alice"}, model="llama-7b", action="infer")
    no = ask(authz, {"X-TARN-User": "bob"}, model="llama-7b", action="infer")
    assert (yes.status_code, yes.text, no.text) == (200, "true", "false")
    assert yes.headers["content-type"].startswith("text/plain")


def test_json_form_carries_policy_and_reason(authz):
    by_accept = ask(authz, {"X-TARN-User": "alice", "Accept": "application/json"}, model="llama-secret",
                    action="infer")
    by_param = ask(authz, {"X-TARN-User": "alice"}, model="llama-7b", action="infer", format="json")
    assert by_accept.json() | {} == {"allowed": False, "audited": True, "policy_id": 3, "reason": "denied by policy 3",
                                     "service": SERVICE, "policy_version": 7, "model": "llama-secret",
                                     "action": "infer", "user": "alice"}
    assert by_param.json()["allowed"] is True and by_param.json()["policy_id"] == 1
    nothing = ask(authz, {"X-TARN-User": "zed"}, model="x", action="list", format="json").json()
    assert (nothing["allowed"], nothing["policy_id"], nothing["reason"]) == (False, -1, "no policy matched: denied")


def test_implied_grant_and_roles_from_ranger(authz):
    assert ask(authz, {"X-TARN-User": "alice"}, model="llama-7b", action="metadata").text == "true"  # infer implies
    assert ask(authz, {"X-TARN-User": "carol"}, model="anything", action="list").text == "true"  # role auditors


def test_knox_actor_header_and_user_parameter_name_the_user(authz):
    assert ask(authz, {"X-Knox-Actor-ID": "alice"}, model="llama-7b", action="infer").text == "true"
    assert ask(authz, {"X-TARN-User": "bob"}, model="llama-7b", action="infer", user="alice").text == "true"


def test_groups_header_from_a_trusted_caller_adds_groups(authz):
    assert ask(authz, {"X-TARN-User": "bob"}, model="llama-7b", action="infer").text == "false"
    assert ask(authz, {"X-TARN-User": "bob", "X-TARN-Groups": "web, ml"}, model="llama-7b",
               action="infer").text == "true"


def test_plain_token_callers_cannot_name_a_user(authz):
    plain = {"X-TARN-Token": PLAIN_TOKEN}
    for extra in ({"X-TARN-User": "alice"}, {"X-Knox-Actor-ID": "alice"}, {"X-TARN-Groups": "ml"}):
        response = authz.get("/authorize", params={"model": "llama-7b", "action": "infer"}, headers={**plain, **extra})
        assert response.status_code == 403, extra
    assert authz.get("/authorize", params={"model": "llama-7b", "action": "infer", "user": "alice"},
                     headers=plain).status_code == 403
    anonymous = authz.get("/authorize", params={"model": "llama-7b", "action": "infer"}, headers=plain)
    assert (anonymous.status_code, anonymous.text) == (200, "false")


def test_unknown_or_missing_token_is_401(authz):
    for headers in ({}, {"X-TARN-Token": "wrong"}, {"Authorization": "Bearer wrong"}):
        response = authz.get("/authorize", params={"model": "m", "action": "infer"}, headers=headers)
        assert response.status_code == 401, headers
    assert authz.get("/authorize", params={"model": "llama-7b", "action": "infer"},
                     headers={"Authorization": f"Bearer {PLAIN_TOKEN}"}).status_code == 200


def test_unknown_action_or_missing_model_is_400(authz):
    assert ask(authz, {"X-TARN-User": "alice"}, model="m", action="delete").status_code == 400
    assert ask(authz, {"X-TARN-User": "alice"}, action="infer").status_code == 400
    assert ask(authz, {"X-TARN-User": "alice"}, model="m").status_code == 400
    assert ask(authz, {"X-TARN-User": "alice"}, model="m", action="Infer").status_code == 400


def test_list_any_model_scope(authz):
    assert ask(authz, {"X-TARN-User": "alice"}, action="list", scope="any").text == "true"
    assert ask(authz, {"X-TARN-User": "bob"}, action="list", scope="any").text == "false"


def test_batch_answers_in_order_as_json_and_as_lines(authz):
    body = {"user": "alice", "checks": [{"model": "llama-7b", "action": "infer"},
                                        {"model": "llama-secret", "action": "infer"},
                                        {"model": "x", "action": "list"}]}
    as_json = authz.post("/authorize", json=body, headers=GATEWAY)
    assert [d["allowed"] for d in as_json.json()["decisions"]] == [True, False, True]
    as_lines = authz.post("/authorize", json=body, headers={**GATEWAY, "Accept": "text/plain"})
    assert as_lines.text == "true\nfalse\ntrue\n"
    bad = authz.post("/authorize", json={"checks": [{"model": "m", "action": "nope"}]}, headers=GATEWAY)
    assert bad.status_code == 400
    spoof = authz.post("/authorize", json=body, headers={"X-TARN-Token": PLAIN_TOKEN})
    assert spoof.status_code == 403


def test_healthz_and_metrics_report_the_loaded_version(authz):
    health = authz.get("/healthz")
    assert health.status_code == 200
    described = health.json()["services"][SERVICE]
    assert (described["loaded"], described["policy_version"], described["role_version"],
            described["user_store_version"], described["origin"]) == (True, 7, 2, 5, "folder")
    ask(authz, {"X-TARN-User": "alice"}, model="llama-7b", action="infer")
    ask(authz, {"X-TARN-User": "bob"}, model="llama-7b", action="infer")
    assert authz.get("/metrics").status_code == 401
    text = authz.get("/metrics", headers={"Authorization": f"Bearer {PLAIN_TOKEN}"}).text
    assert f'tarn_authz_policy_version{{origin="folder",service="{SERVICE}"}} 7.0' in text
    assert f'tarn_authz_decisions_total{{result="allowed",service="{SERVICE}"}} 1.0' in text
    assert f'tarn_authz_decisions_total{{result="denied",service="{SERVICE}"}} 1.0' in text
    assert "tarn_authz_decision_seconds_bucket" in text and "tarn_authz_refresh_errors_total" in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_no_policies_loaded_denies_everything_and_is_unhealthy(tmp_path, start_authz):  # noqa: F811
    (tmp_path / "policies").mkdir()
    server = start_authz()
    with httpx.Client(base_url=server.url) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        answer = ask(client, {"X-TARN-User": "alice"}, model="llama-7b", action="infer", format="json").json()
        assert answer["allowed"] is False and "no policies loaded" in answer["reason"]
        assert ask(client, {"X-TARN-User": "alice"}, model="llama-7b", action="infer").text == "false"


def test_malformed_policy_file_keeps_the_last_good_policies(authz, tmp_path):
    policy_file = tmp_path / "policies" / f"{SERVICE}.json"
    policy_file.write_text('{"serviceName": "triton_prod", "policies": [')
    described = wait_for(lambda: (d := _described(authz))["last_error"] and d, 10, "the refresh error in /healthz",
                         interval_s=0.1)
    assert "is not JSON" in described["last_error"]
    assert described["loaded"] and described["policy_version"] == 7
    assert described["degraded"] is True and described["refused"] is True
    health = authz.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert ask(authz, {"X-TARN-User": "alice"}, model="llama-7b", action="infer").text == "true"
    # a good file again is picked up
    write_policy_dir(tmp_path / "policies", "v2")
    wait_for(lambda: _described(authz)["policy_version"] == 8, 10, "the corrected policy file to be loaded",
             interval_s=0.1)
    assert authz.get("/healthz").json()["services"][SERVICE]["last_error"] is None


def test_unknown_service_parameter_is_404(authz):
    assert ask(authz, {"X-TARN-User": "alice"}, model="m", action="infer", service="nope").status_code == 404
    assert ask(authz, {"X-TARN-User": "alice"}, model="m", action="infer", deployment="nope").status_code == 404
