"""When tarn-am re-obtains the containers' HDFS delegation token, what a new container gets,
and what it says when it cannot (the policy is pure; the keeper runs on an injected clock and
token source)."""
from __future__ import annotations

import base64
import dataclasses
import logging

from tarn_am import token_policy as policy
from tarn_am.token_keeper import AM_TOKENS_ENV, TokenError, TokenKeeper
from tarn_shared.hadoop_tokens import HadoopToken, parse_token_storage
from tests.shared.test_hadoop_tokens import REAL_URL_STRING, identifier_with_max_date

TOKEN = HadoopToken.from_url_string(REAL_URL_STRING)
ISSUE_MS = TOKEN.identifier_fields().issue_date_ms  # max date: ISSUE_MS + 40 s


def token_at(issue_ms: int, life_ms: int = 40_000) -> HadoopToken:
    ident = dataclasses.replace(TOKEN.identifier_fields(), issue_date_ms=issue_ms)
    return dataclasses.replace(TOKEN, identifier=identifier_with_max_date(ident, max_date_ms=issue_ms + life_ms))


def test_a_fresh_token_is_due_at_half_of_its_life_up_to_the_renew_date():
    held = policy.held("hdfs://nn", TOKEN, renewed_until_ms=ISSUE_MS + 20_000)  # renew date before max date
    assert held.expires_ms == ISSUE_MS + 20_000
    assert not policy.due(held, ISSUE_MS + 9_999) and policy.due(held, ISSUE_MS + 10_000)
    assert policy.due(None, ISSUE_MS)
    # never past the max date, whatever the renewal said
    assert policy.held("", TOKEN, renewed_until_ms=ISSUE_MS + 99_000).expires_ms == ISSUE_MS + 40_000


def test_the_next_look_is_at_the_refresh_point_or_a_retry_after_a_failure():
    held = policy.held("", TOKEN, None)
    assert policy.next_check_s(held, ISSUE_MS + 5_000, last_failed=False) == 15.0
    assert policy.next_check_s(held, ISSUE_MS + 5_000, last_failed=True) == policy.RETRY_S
    assert policy.next_check_s(held, ISSUE_MS + 30_000, last_failed=False) == 1.0


def test_a_failed_renewal_says_what_failed_what_it_costs_and_what_to_check():
    held = policy.held("hdfs://nn:8020", TOKEN, None)
    line = policy.renewal_failure("hdfs://nn:8020", "alice@TARN.TEST", "/c/tarn-am.keytab", "KDC unreachable", held,
                                  ISSUE_MS + 1_000)
    assert line == ("tarn-am could not re-obtain the HDFS delegation token for hdfs://nn:8020 as alice@TARN.TEST with "
                    "the keytab /c/tarn-am.keytab: KDC unreachable; new containers still get the last one, valid until "
                    "2026-12-01 23:11:11 UTC; after that they cannot stage. Check the keytab (`klist -k`), the KDC "
                    "and the NameNode")
    expired = policy.renewal_failure("", "a@R", "k", "e", held, ISSUE_MS + 50_000)
    assert "expired at 2026-12-01 23:11:11 UTC: new containers cannot stage" in expired


def test_without_a_keytab_the_start_says_when_the_first_token_ends():
    line = policy.no_keytab_warning(TOKEN)
    assert line.startswith("the WEBHDFS delegation token for 127.0.0.1:33443 of alice (sequence number 1) ends at "
                           "2026-12-01 23:11:11 UTC (its max lifetime) and tarn-am has no keytab")
    assert "--principal and --keytab" in line


class Source:
    """The keeper's token source on a script: each call answers the next token or error."""
    principal, keytab = "alice@TARN.TEST", "/c/tarn-am.keytab"

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = []

    def obtain(self, fs):
        self.asked.append(fs)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer, answer.identifier_fields().max_date_ms


def test_new_containers_get_the_newest_token_and_keep_the_last_while_renewal_fails(caplog):
    now = [ISSUE_MS / 1000]
    source = Source(token_at(ISSUE_MS), TokenError("cannot log in: Clock skew too great"), token_at(ISSUE_MS + 35_000))
    keeper = TokenKeeper(source, ["hdfs://nn:8020"], clock=lambda: now[0])
    assert keeper.container_env() == {}

    assert keeper.refresh_due() == 20.0
    first = keeper.container_env()[AM_TOKENS_ENV]
    assert parse_token_storage(base64.b64decode(first))[0].identifier_fields().issue_date_ms == ISSUE_MS

    now[0] += 10
    assert keeper.refresh_due() == 10.0 and len(source.asked) == 1  # not due yet: nothing asked
    now[0] += 15
    with caplog.at_level(logging.ERROR, "tarn_am.tokens"):
        assert keeper.refresh_due() == policy.RETRY_S
    assert "Clock skew too great; new containers still get the last one" in caplog.text
    assert keeper.container_env()[AM_TOKENS_ENV] == first

    now[0] += 10
    keeper.refresh_due()
    newest = parse_token_storage(base64.b64decode(keeper.container_env()[AM_TOKENS_ENV]))
    assert [t.identifier_fields().issue_date_ms for t in newest] == [ISSUE_MS + 35_000]
    assert source.asked == ["hdfs://nn:8020"] * 3


def test_an_expired_token_is_never_handed_out():
    now = [ISSUE_MS / 1000]
    keeper = TokenKeeper(Source(token_at(ISSUE_MS), TokenError("down")), [], clock=lambda: now[0])
    keeper.refresh_due()
    now[0] += 41
    keeper.refresh_due()
    assert keeper.container_env() == {}
