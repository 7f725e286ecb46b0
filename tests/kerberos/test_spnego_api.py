"""SPNEGO on tarn-am's REST API and dashboard, on the stack's real KDC: tarn-am's real app
(create_app, uvicorn) in this process with TARN_AM_AUTH=token+spnego and the HTTP/localhost
keytab, and the `tarn` commands' own HTTP (cli/am_http.py, what status/scale/stop use) with
alice's and bob's tickets. No YARN: the application lookup before it is test_demo_kerberos.py's."""
from __future__ import annotations

import argparse
import time
from typing import Iterator

import httpx
import pytest
import skein
from fastapi.testclient import TestClient

from tarn_shared.errors import ConfigError

from tarn_am.app import ApiContext, create_app
from tarn_am.authz import AuthzClient
from tarn_am.bus import RedisBus
from tarn_am.cli.am_client import CliError, Yarn
from tarn_am.cli.am_http import am_http, checked
from tarn_am.cli.exits import classify
from tarn_am.cli.status_view import show_status
from tarn_am.cli.subcommands import render_status
from tarn_am.cli.webhdfs import spnego_auth
from tarn_am.controller import Controller
from tarn_am.history import History
from tarn_am.settings import AmSettings
from tarn_am.spnego_acceptor import SpnegoAcceptor
from tarn_am.view import FleetView
from tarn_am.yarn import YarnAdapter
from tests.am.test_dashboard_page import ServedAm
from tests.support.polling import wait_for

from .conftest import client_env, kdc

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(300)]
TOKEN = "spnego-api-token"
APP_ID = "application_1700000000000_0015"


def am_parts(settings: AmSettings):
    yarn = YarnAdapter(skein.ApplicationClient("127.0.0.1:1", APP_ID, security=skein.Security.new_credentials()))
    view = FleetView(settings.deployment)
    controller = Controller(settings, yarn, RedisBus(settings.redis_url, settings.deployment, APP_ID), view)
    return controller, ApiContext(controller=controller, authz=AuthzClient(None), history=History(1800, 2.0))


def settings_for(stack, auth: str, **extra) -> AmSettings:
    return AmSettings(deployment="krb", slots=["nvidia-nm1=nm1"], redis_url="redis://127.0.0.1:1/0",
                      min_instances=1, max_instances=2, auth=auth, spnego_keytab=stack.kdc.keytab("http"),
                      spnego_principal=kdc.principal("HTTP/localhost"), owner="alice", **extra)


@pytest.fixture(scope="module")
def spnego_am(secure_stack, tmp_path_factory) -> Iterator[ServedAm]:
    """alice's deployment: the token or a ticket; alice owns it, nobody else is listed."""
    with pytest.MonkeyPatch.context() as mp:  # the acceptor reads the realm from KRB5_CONFIG
        mp.setenv("KRB5_CONFIG", secure_stack.env["KRB5_CONFIG"])
        settings = settings_for(secure_stack, "token+spnego", token=TOKEN)
        controller, context = am_parts(settings)
        am = ServedAm(controller, context, settings)
        am.thread.start()
        wait_for(lambda: am.server.started, 30, "tarn-am's API to start", interval_s=0.05)
        try:
            yield am
        finally:
            am.server.should_exit = True
            am.thread.join(timeout=15)


def status_args(login=None) -> argparse.Namespace:
    yarn = Yarn(log=None)
    yarn.login = login
    return argparse.Namespace(json=False, watch=False, interval_s=2.0, yarn=yarn)


def test_alice_with_her_ticket_gets_the_status_and_the_state_names_her_not_the_header(spnego_am, login, capsys):
    login("alice")
    assert show_status(status_args(), APP_ID, spnego_am.url, None, render_status) == 0
    assert capsys.readouterr().out.startswith(f"krb {APP_ID} at {spnego_am.url}\ntarget 1 (bounds 1..2)")
    with am_http(None) as http:
        state = checked(http.get(f"{spnego_am.url}/api/state", headers={"X-TARN-User": "bob"})).json()
        assert state["user"] == "alice"  # a ticket's holder is who the ticket says
        assert checked(http.get(f"{spnego_am.url}/instances")).status_code == 200


def test_alice_may_change_her_deployment(spnego_am, login):
    login("alice")
    with am_http(None) as http:  # out of bounds: past authentication and authorization, refused by the rules
        response = http.post(f"{spnego_am.url}/scale", json={"count": 7, "reason": "t"})
    assert response.status_code == 422, response.text
    assert "max" in response.json()["detail"]


def test_without_a_ticket_or_token_the_api_answers_401_negotiate_and_tarn_says_run_kinit(spnego_am, login):
    login(None)
    with httpx.Client(trust_env=False) as plain:
        response = plain.get(f"{spnego_am.url}/api/state")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Negotiate, Bearer"
        assert plain.get(f"{spnego_am.url}/healthz").status_code in (200, 503)  # probes need no credential
    with pytest.raises(CliError) as refused:
        show_status(status_args(), APP_ID, spnego_am.url, None, render_status)
    code, message, _ = classify(refused.value)
    host = spnego_am.url.removeprefix("http://")
    assert (code, message) == (1, f"GET /api/state: 401 tarn-am at {host} wants a Kerberos ticket (SPNEGO) and "
                                  "there is none: run kinit, or give --principal and --keytab, or set TARN_TOKEN")


def test_the_token_still_gets_in_beside_spnego(spnego_am, login):
    login(None)
    with am_http(TOKEN) as http:
        assert checked(http.get(f"{spnego_am.url}/api/state")).json()["deployment"] == "krb"
    with am_http("wrong-token") as http:
        assert http.get(f"{spnego_am.url}/api/state").status_code == 401


def test_bob_with_a_valid_ticket_may_neither_read_nor_change_alices_deployment(spnego_am, login):
    login("bob")
    with am_http(None) as http:
        read = http.get(f"{spnego_am.url}/api/state")
        change = http.post(f"{spnego_am.url}/scale", json={"count": 2, "reason": "t"})
    assert (read.status_code, change.status_code) == (403, 403)
    assert read.json()["detail"] == ("bob (bob@TARN.TEST) may not read this deployment: only its owner (alice), "
                                     "admins (none) and viewers (none) may; see TARN_AM_OWNER, TARN_AM_ADMINS, "
                                     "TARN_AM_VIEWERS")
    with pytest.raises(CliError, match=r"^POST /scale: 403 bob \(bob@TARN.TEST\) may not change this deployment"):
        checked(change)


def test_tarn_with_principal_and_keytab_uses_that_login_not_the_cache(spnego_am, secure_stack, tmp_path, monkeypatch):
    for key, value in client_env(secure_stack, tmp_path, None).items():  # no ticket in the cache
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KRB5_CLIENT_KTNAME", raising=False)
    from tarn_am.cli.kerberos_login import keytab_login
    alice = keytab_login(kdc.principal("alice"), str(secure_stack.kdc.keytab("alice")))
    with am_http(None, alice) as http:
        assert checked(http.get(f"{spnego_am.url}/api/state")).json()["user"] == "alice"


def test_a_viewer_reads_but_may_not_change_and_spnego_only_guards_the_dashboard_page(secure_stack, login,
                                                                                      monkeypatch):
    monkeypatch.setenv("KRB5_CONFIG", secure_stack.env["KRB5_CONFIG"])
    settings = settings_for(secure_stack, "spnego", viewers=["bob"])
    client = TestClient(create_app(settings, am_parts(settings)[1]), base_url="http://localhost")
    assert client.get("/dashboard").status_code == 401  # SPNEGO only: the page too
    login("bob")
    client.auth = spnego_auth()
    assert client.get("/dashboard").status_code == 200
    assert client.get("/api/state").json()["user"] == "bob"
    assert client.post("/scale", json={"count": 2}).status_code == 403  # a viewer does not change


def test_a_keytab_without_the_http_key_fails_at_start_naming_the_setting(secure_stack, monkeypatch):
    monkeypatch.setenv("KRB5_CONFIG", secure_stack.env["KRB5_CONFIG"])
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"^TARN_AM_SPNEGO_KEYTAB .*bob.keytab cannot accept SPNEGO as "
                                          r"HTTP/localhost@TARN.TEST: .*No key table entry found"):
        SpnegoAcceptor(secure_stack.kdc.keytab("bob"), kdc.principal("HTTP/localhost"))
    assert time.monotonic() - started < 10
