"""The node-agent's line for WebHDFS refusing an expired delegation token, and the tokens it
chooses from (YARN's file and tarn-am's fresher ones)."""
from __future__ import annotations

import base64
import dataclasses

import pytest

from tarn_node_agent.errors import TokenFileError
from tarn_node_agent.hdfs import expired_token_message
from tarn_node_agent.tokens import AM_TOKENS_ENV, container_tokens
from tarn_shared.hadoop_tokens import HadoopToken, token_storage_bytes
from tests.shared.test_hadoop_tokens import REAL_URL_STRING

# What the secure minicluster's WebHDFS answered (RemoteException messages, verbatim).
USED_EXPIRED = ("Failed to obtain user group information: org.apache.hadoop.security.token.SecretManager$InvalidToken: "
                "Token  has expired, current time: 2026-12-01 23:11:21,232+0000 expected renewal time: "
                "2026-12-01 23:10:51,664+0000")
RENEWED_EXPIRED = ("alice tried to renew an expired token (token for alice: HDFS_DELEGATION_TOKEN owner=alice, "
                   "renewer=alice, realUser=, issueDate=1796166631633, maxDate=1796166671633, sequenceNumber=1, "
                   "masterKeyId=2) max expiration date: 2026-12-01 23:11:11,633+0000 currentTime: "
                   "2026-12-01 23:11:21,314+0000")


def test_an_expired_token_names_the_token_when_it_expired_and_who_renews_it():
    token = HadoopToken.from_url_string(REAL_URL_STRING)
    line = expired_token_message(USED_EXPIRED, "listing", "/models", token)

    assert line == ("WebHDFS refused the WEBHDFS delegation token for 127.0.0.1:33443 of alice (sequence number 1) "
                    "while listing /models: it expired at 2026-12-01 23:10:51 UTC. tarn-am must renew or re-obtain "
                    "it before then: submit with --principal and --keytab (tarn-am re-obtains the tokens of new "
                    "containers with the keytab), and see tarn-am's log for why it did not")


def test_a_failed_renewal_gives_the_max_date():
    assert "it expired at 2026-12-01 23:11:11 UTC." in expired_token_message(RENEWED_EXPIRED, "reading", "/m", None)


def test_other_refusals_are_not_called_expired():
    assert expired_token_message("Permission denied: user=bob, access=READ_EXECUTE", "listing", "/m", None) is None


def test_tarn_ams_tokens_join_yarns_file(tmp_path):
    yarn = HadoopToken.from_url_string(REAL_URL_STRING, alias="yarn")
    fresh = dataclasses.replace(yarn, alias="tarn-am:default")
    (tmp_path / "container_tokens").write_bytes(token_storage_bytes([yarn]))
    environ = {"HADOOP_TOKEN_FILE_LOCATION": str(tmp_path / "container_tokens"),
               AM_TOKENS_ENV: base64.b64encode(token_storage_bytes([fresh])).decode()}

    assert [t.alias for t in container_tokens(environ)] == ["yarn", "tarn-am:default"]


def test_a_garbled_token_variable_is_a_clear_error():
    with pytest.raises(TokenFileError, match=f"{AM_TOKENS_ENV} is not base64"):
        container_tokens({AM_TOKENS_ENV: "%%%"})


def test_an_expired_lease_is_not_an_expired_token():
    assert expired_token_message("Lease for /m/f has expired hard limit", "reading", "/m/f", None) is None
