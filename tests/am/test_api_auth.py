"""The pure rules of tarn-am's API authentication (api_auth.py): short names and the ACL.
The SPNEGO exchange itself is checked on the real KDC in tests/kerberos/test_spnego_api.py."""
from __future__ import annotations

import pytest

from tarn_am.api_auth import Access, challenge, short_name


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


def test_the_401_offers_each_way_in_that_is_configured():
    assert (challenge(True, True), challenge(False, True), challenge(True, False)) == (
        "Negotiate, Bearer", "Negotiate", "Bearer")
