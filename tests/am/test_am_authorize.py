"""The AM's /authorize fails closed (issue 14, item 6): tarn-am's real app in process asking a
real tarn-authz on a free port (ServerThread), with its own gateway credential, never its read
token, and naming the deployment's Ranger service. Audits go through the stack's Redis."""
from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
import skein
from fastapi.testclient import TestClient

from tarn_shared import events as ev

from tarn_am.app import ApiContext, create_app
from tarn_am.authz import AuthzClient, authz_client
from tarn_am.bus import RedisBus
from tarn_am.cli.arguments import build_parser, submit_values
from tarn_am.cli.options import SubmitOptions
from tarn_am.cli.spec import PythonLauncher, build_spec
from tarn_am.controller import Controller
from tarn_am.settings import AmSettings
from tarn_am.view import FleetView
from tarn_am.yarn import YarnAdapter
from tests.am.test_cli_without_cluster import SUBMIT, TARN, environment
from tests.authz.support import GATEWAY_TOKEN, PLAIN_TOKEN, SERVICE, start_authz, write_policy_dir  # noqa: F401
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
READ_TOKEN = "am-read-token"
APP_ID = "application_1700000000000_0014"
WAIT_S = 10.0


def am_settings(**overrides) -> AmSettings:
    values = dict(deployment="authz-am", slots=["nvidia-nm1=nm1"], token=READ_TOKEN,
                  redis_url="redis://127.0.0.1:1/0", min_instances=1, max_instances=1)
    values.update(overrides)
    return AmSettings(**values)


def served(settings: AmSettings, authz: AuthzClient) -> TestClient:
    """The AM's app over one ready instance serving llama-7b; the routes read neither YARN nor Redis."""
    yarn = YarnAdapter(skein.ApplicationClient("127.0.0.1:1", APP_ID, security=skein.Security.new_credentials()))
    view = FleetView(settings.deployment)
    view.apply_lifecycle("1-0", ev.InstanceReady(
        deployment=settings.deployment, app_id=APP_ID, instance_id="container_1700000000000_0014_01_000002", seq=1,
        models=["llama-7b"], endpoints=ev.Endpoints(host="nm1", http_port=8000)), time.time())
    controller = Controller(settings, yarn, RedisBus(settings.redis_url, settings.deployment, APP_ID), view)
    return TestClient(create_app(settings, ApiContext(controller=controller, authz=authz)),
                      headers={"X-TARN-Token": READ_TOKEN})


def ask(am: TestClient, user: str, model: str = "llama-7b", action: str = "infer") -> httpx.Response:
    return am.get("/authorize", params={"model": model, "action": action}, headers={"X-TARN-User": user})


def audit_lines(path, count: int):
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines] if len(lines) >= count else None


@pytest.fixture
def authz(tmp_path, start_authz, redis_url):  # noqa: F811
    write_policy_dir(tmp_path / "policies")
    audit_log = tmp_path / "audit.log"
    server = start_authz(ranger_audit=True, redis_url=redis_url, audit_log=audit_log)
    server.audit_log = audit_log
    return server


def test_without_an_authz_url_authorize_answers_503_and_says_why():
    settings = am_settings()
    with served(settings, authz_client(settings)) as am:
        response = ask(am, "alice")
        assert response.status_code == 503
        assert "no authz configured (tarn submit --authz-url)" in response.json()["detail"]
        # The views are not decisions: unfiltered without authz, as before (no Ranger service to ask).
        assert am.get("/models").status_code == 200


def test_the_am_asks_for_its_ranger_service_with_its_gateway_credential_and_authz_audits_it(authz):
    settings = am_settings(authz_url=authz.url, authz_gateway_token=GATEWAY_TOKEN, ranger_service=SERVICE)
    with served(settings, authz_client(settings)) as am:
        answers = {user: ask(am, user) for user in ("alice", "bob")}
    assert {u: (r.status_code, r.text) for u, r in answers.items()} == {"alice": (200, "true"), "bob": (200, "false")}
    audited = wait_for(lambda: audit_lines(authz.audit_log, 2), WAIT_S, "two audit lines", interval_s=0.05)
    assert [(a["repo"], a["reqUser"], a["resource"], a["result"]) for a in audited] == [
        (SERVICE, "alice", "llama-7b", 1), (SERVICE, "bob", "llama-7b", 0)]


def test_a_service_authz_does_not_serve_is_a_503_never_a_false_or_the_default_services_answer(authz):
    settings = am_settings(authz_url=authz.url, authz_gateway_token=GATEWAY_TOKEN, ranger_service="triton_other")
    with served(settings, authz_client(settings)) as am:
        response = ask(am, "alice")
    assert response.status_code == 503
    assert "authz answered 404: not serving Ranger service 'triton_other'" in response.json()["detail"]


def test_without_a_ranger_service_the_am_names_its_deployment_and_authz_finding_no_record_is_a_503(authz):
    settings = am_settings(authz_url=authz.url, authz_gateway_token=GATEWAY_TOKEN)
    with served(settings, authz_client(settings)) as am:
        response = ask(am, "alice")
    assert response.status_code == 503
    assert "no deployment record 'authz-am' names a Ranger service" in response.json()["detail"]


@pytest.mark.parametrize("credential, status", [("wrong-token", 401), (PLAIN_TOKEN, 403), (None, 401)])
def test_a_credential_authz_refuses_makes_the_am_answer_503_never_true(authz, credential, status):
    settings = am_settings(authz_url=authz.url, authz_gateway_token=credential, ranger_service=SERVICE)
    with served(settings, authz_client(settings)) as am:
        response = ask(am, "alice")  # alice may infer llama-7b: only a refused credential can say no
    assert response.status_code == 503
    assert f"authz refused the AM's credential ({status}: " in response.json()["detail"]
    assert "TARN_AM_AUTHZ_GATEWAY_TOKEN" in response.json()["detail"]


def test_a_refused_credential_leaves_the_models_out_of_the_views_and_says_why(authz):
    settings = am_settings(authz_url=authz.url, authz_gateway_token="wrong-token", ranger_service=SERVICE)
    good = am_settings(authz_url=authz.url, authz_gateway_token=GATEWAY_TOKEN, ranger_service=SERVICE)
    with served(settings, authz_client(settings)) as am:
        models = am.get("/models", headers={"X-TARN-User": "alice"})
        state = am.get("/api/state", headers={"X-TARN-User": "alice"}).raise_for_status().json()
    assert models.status_code == 503 and "refused the AM's credential (401" in models.json()["detail"]
    assert state["models"] == [] and "refused the AM's credential (401" in state["unavailable"]["models"]
    with served(good, authz_client(good)) as am:  # the same AM with authz's gateway token: alice lists all
        assert [m["name"] for m in am.get("/models", headers={"X-TARN-User": "alice"}).json()] == ["llama-7b"]


def test_the_read_token_is_not_the_ams_authz_credential_and_cannot_name_users_at_authz(authz):
    # An operator who set only the read token: the AM presents nothing at authz (the None case above: a 503).
    settings = am_settings(authz_url=authz.url, ranger_service=SERVICE)
    assert "X-TARN-Token" not in authz_client(settings)._http.headers
    # An AM reader going to authz directly with the read token is a stranger there.
    direct = httpx.get(f"{authz.url}/authorize", params={"model": "llama-7b", "action": "infer", "user": "alice"},
                       headers={"X-TARN-Token": READ_TOKEN}, trust_env=False, timeout=10)
    assert direct.status_code == 401


def test_tarn_submit_passes_the_gateway_token_in_the_masters_env_only():
    argv = ["submit", "--model-repository", "/nfs/models", "--runtime", "process", "--authz-url", "http://authz:8096"]
    from_env = SubmitOptions.parse(submit_values(build_parser().parse_args(argv), {"TARN_AUTHZ_GATEWAY_TOKEN": "gw-1"}))
    from_flag = SubmitOptions.parse(submit_values(build_parser().parse_args(argv + ["--authz-gateway-token", "gw-2"]),
                                                  {"TARN_AUTHZ_GATEWAY_TOKEN": "gw-1"}))
    assert from_flag.authz_gateway_token.get_secret_value() == "gw-2"
    spec = build_spec(from_env, ["nm1"], PythonLauncher(interpreter="/usr/bin/python3"))
    assert spec.master.env["TARN_AM_AUTHZ_GATEWAY_TOKEN"] == "gw-1"
    assert "gw-1" not in spec.master.script and all("gw-1" not in s.script for s in spec.services.values())
    assert all("gw-1" not in value for s in spec.services.values() for value in s.env.values())
    assert "gw-1" not in repr(from_env)  # a SecretStr: never in a log line or traceback


def test_a_dry_run_hides_the_gateway_token(tmp_path):
    env = dict(environment(tmp_path), TARN_AUTHZ_GATEWAY_TOKEN="gw-secret-3")
    done = subprocess.run([TARN, *SUBMIT, "--authz-url", "http://authz:8096"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["master"]["env"]["TARN_AM_AUTHZ_GATEWAY_TOKEN"] == "***"
    assert "gw-secret-3" not in done.stdout + done.stderr
