"""The pure rules of tarn-am's API authentication (api_auth.py): short names and the ACL.
The SPNEGO exchange itself is checked on the real KDC in tests/kerberos/test_spnego_api.py."""
from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tarn_am.api_auth import Access, api_guard, challenge, short_name


@pytest.mark.parametrize("principal,expected", [
    ("alice@TARN.TEST", "alice"),
    ("alice/admin@TARN.TEST", "alice"),
    ("alice", "alice"),
    ("alice@OTHER.REALM", "alice@OTHER.REALM"),  # another realm matches no local name
])
def test_a_principal_of_the_local_realm_is_known_by_its_first_component(principal, expected):
    assert short_name(principal, "TARN.TEST") == expected


def test_the_owner_and_admins_read_and_change_viewers_only_read():
    access = Access("alice", frozenset({"ops"}), frozenset({"carol"}))
    assert [access.allows(u, change=True) for u in ("alice", "ops", "carol", "bob")] == [True, True, False, False]
    assert [access.allows(u, change=False) for u in ("alice", "ops", "carol", "bob")] == [True, True, True, False]
    assert Access(None, viewers=frozenset({"*"})).allows("bob", change=False)
    assert not Access(None, viewers=frozenset({"*"})).allows("bob", change=True)
    assert access.who_may(change=True) == ("only its owner (alice) and admins (ops) may; "
                                           "see TARN_AM_OWNER, TARN_AM_ADMINS")


def test_the_401_offers_each_way_in_that_is_configured():
    assert (challenge(True, True), challenge(False, True), challenge(True, False)) == (
        "Negotiate, Bearer", "Negotiate", "Bearer")


def guarded(**guard) -> TestClient:
    app = FastAPI()
    check = api_guard(allow_query=False, acceptor=None, access=Access("alice"), change=False, **guard)

    @app.get("/read", dependencies=[Depends(check)])
    def read() -> dict:
        return {"ok": True}

    return TestClient(app)


def test_token_mode_without_a_token_lets_everyone_in_as_it_always_did():
    assert guarded(secret=None, tokens=True).get("/read").status_code == 200


def test_token_mode_takes_the_token_and_answers_401_bearer_without_it():
    client = guarded(secret="s3cret", tokens=True)
    assert client.get("/read", headers={"X-TARN-Token": "s3cret"}).status_code == 200
    refused = client.get("/read", headers={"Authorization": "Negotiate YWJj"})  # no acceptor: not a way in
    assert (refused.status_code, refused.headers["www-authenticate"]) == (401, "Bearer")
