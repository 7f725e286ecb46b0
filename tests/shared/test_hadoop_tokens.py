"""Delegation tokens as WebHDFS and YARN give them: the identifier's dates, and the token
storage file tarn-am writes for new containers read back as Hadoop's own."""
from __future__ import annotations

import dataclasses
import io

import pytest

from tarn_shared.hadoop_tokens import (DelegationIdentifier, HadoopToken, TokenFileError, parse_token_storage,
                                       select_hdfs_token, token_storage_bytes, utc_text, write_vlong)

# GETDELEGATIONTOKEN's answer from the secure minicluster (max-lifetime 40 s, a stack long gone).
REAL_URL_STRING = ("HgAFYWxpY2UFYWxpY2UAigGiM9_A0YoBojPgXREBAhSEDwu3x_rL42BXv0v9-bN-9q-XpRJXRUJIREZTIGRlbGVnYXRpb24P"
                   "MTI3LjAuMC4xOjMzNDQz")


def test_a_webhdfs_token_gives_its_owner_renewer_and_dates():
    token = HadoopToken.from_url_string(REAL_URL_STRING)

    assert (token.kind, token.service) == ("WEBHDFS delegation", "127.0.0.1:33443")
    assert token.identifier_fields() == DelegationIdentifier(
        owner="alice", renewer="alice", real_user="", issue_date_ms=1796166631633, max_date_ms=1796166671633,
        sequence_number=1)
    assert utc_text(1796166671633) == "2026-12-01 23:11:11 UTC"
    assert token.url_string() == REAL_URL_STRING
    assert token.describe() == "the WEBHDFS delegation token for 127.0.0.1:33443 of alice (sequence number 1)"


def test_the_storage_file_tarn_am_writes_reads_back_token_for_token():
    token = HadoopToken.from_url_string(REAL_URL_STRING, alias="tarn-am:hdfs://nn:8020")
    other = dataclasses.replace(token, alias="rm", kind="RM_DELEGATION_TOKEN", identifier=b"\x01")

    assert parse_token_storage(token_storage_bytes([token, other])) == [token, other]


def test_the_longest_lived_hdfs_token_is_chosen():
    first = HadoopToken.from_url_string(REAL_URL_STRING, alias="yarn")
    ident = first.identifier_fields()
    later = dataclasses.replace(first, alias="tarn-am",
                                identifier=identifier_with_max_date(ident, max_date_ms=ident.max_date_ms + 1))

    assert select_hdfs_token([first, later], ["127.0.0.1:33443"]).alias == "tarn-am"
    assert select_hdfs_token([later, first]).alias == "tarn-am"


def test_a_token_of_another_kind_has_no_delegation_fields():
    assert HadoopToken("a", b"\x07junk", b"", "kind", "svc").identifier_fields() is None


def test_a_garbled_url_string_is_a_clear_error():
    with pytest.raises(TokenFileError, match="not a Hadoop token URL string"):
        HadoopToken.from_url_string("AAAA")


def identifier_with_max_date(ident: DelegationIdentifier, max_date_ms: int) -> bytes:
    """``ident``'s bytes as Hadoop writes them, with another max date (master key id 2)."""
    out = io.BytesIO()
    out.write(b"\x00")
    for text in (ident.owner, ident.renewer, ident.real_user):
        write_vlong(out, len(text))
        out.write(text.encode())
    for number in (ident.issue_date_ms, max_date_ms, ident.sequence_number, 2):
        write_vlong(out, number)
    return out.getvalue()
