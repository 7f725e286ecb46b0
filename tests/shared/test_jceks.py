"""Hadoop credential files decoded by the parser `tarn submit` and the node-agent share, on
files Hadoop's own CredentialShell wrote (tests/shared/data/README.md says how)."""
from pathlib import Path

import pytest

from tarn_shared.jceks import DEFAULT_STORE_PASSWORD, CredentialFileError, decode_keystore, store_password

DATA = Path(__file__).parent / "data"
DEFAULT_FILE = DATA / "credentials-default-password.jceks"
PASSWORD_FILE = DATA / "credentials-s3cret.jceks"


def test_a_file_with_hadoops_default_password_opens_with_every_alias():
    assert decode_keystore(DEFAULT_FILE.read_bytes(), "none", "x.jceks") == {
        "huggingface.token": "hf_TEST_VALUE", "tarn.env.api_key": "api-test-value"}  # JCEKS lower-cases aliases


def test_a_file_with_its_own_password_opens_with_that_password():
    assert decode_keystore(PASSWORD_FILE.read_bytes(), "s3cret", "x.jceks") == {
        "tarn.env.db_password": "db-test-value"}


@pytest.mark.parametrize("path,password", [(DEFAULT_FILE, "s3cret"), (PASSWORD_FILE, "none")])
def test_a_wrong_password_is_named_without_any_value(path, password):
    with pytest.raises(CredentialFileError, match="wrong store password") as failure:
        decode_keystore(path.read_bytes(), password, "hdfs:///s/x.jceks")
    message = str(failure.value)
    assert "hdfs:///s/x.jceks" in message and "HADOOP_CREDSTORE_PASSWORD" in message
    assert "test-value" not in message and "hf_TEST" not in message


@pytest.mark.parametrize("data", [b"", b"\x00" * 64, b"not a keystore at all", DEFAULT_FILE.read_bytes()[:100]])
def test_what_is_not_a_jceks_file_is_a_clear_error(data):
    with pytest.raises(CredentialFileError, match="not a readable JCEKS keystore|wrong store password"):
        decode_keystore(data, "none", "x.jceks")


def test_the_store_password_defaults_to_hadoops_none():
    assert store_password({}) == DEFAULT_STORE_PASSWORD == "none"
    assert store_password({"HADOOP_CREDSTORE_PASSWORD": ""}) == "none"
    assert store_password({"HADOOP_CREDSTORE_PASSWORD": "pw"}) == "pw"
