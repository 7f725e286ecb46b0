"""Hadoop token storage files, as Hadoop's own Credentials class writes them (data/MakeTokenFiles.java)."""
import io
from pathlib import Path

import pytest

from tarn_node_agent.errors import TokenFileError
from tarn_node_agent.hdfs_credentials import token_for
from tarn_node_agent.tokens import parse_token_storage, read_vlong, write_vlong

DATA = Path(__file__).parent / "data"
EXPECTED = dict(line.split() for line in (DATA / "tokens-expected.txt").read_text().splitlines())


@pytest.mark.parametrize("fmt", ["writable", "protobuf"])
def test_both_storage_formats_give_hadoops_own_url_strings(fmt):
    tokens = parse_token_storage((DATA / f"tokens-{fmt}.hdts").read_bytes())

    by_alias = {t.alias: t for t in tokens}
    assert set(by_alias) == {"hdfs", "rm"}
    assert by_alias["hdfs"].kind == "HDFS_DELEGATION_TOKEN" and by_alias["hdfs"].service == "127.0.0.1:8020"
    assert by_alias["hdfs"].url_string() == EXPECTED["hdfs"]
    assert by_alias["rm"].url_string() == EXPECTED["rm"]


def test_the_hdfs_token_is_chosen_over_others_and_never_printed():
    tokens = parse_token_storage((DATA / "tokens-writable.hdts").read_bytes())
    token = token_for(tokens, "127.0.0.1:8020")

    assert token is not None and token.alias == "hdfs"
    assert "s3cr3t" not in repr(token)


@pytest.mark.parametrize("value", [0, 1, -1, 127, -112, 128, -113, 300, 65535, -70000, 2**40, -(2**40)])
def test_vlong_round_trips_like_hadoops_writableutils(value):
    out = io.BytesIO()
    write_vlong(out, value)
    assert read_vlong(io.BytesIO(out.getvalue())) == value


@pytest.mark.parametrize("data,message", [
    (b"NOPE\x00", "no HDTS header"),
    (b"HDTS\x07\x00", "unknown token storage version 7"),
    (b"HDTS\x00\x05\x04hd", "corrupt"),
])
def test_a_bad_token_file_is_a_clear_error(data, message):
    with pytest.raises(TokenFileError, match=message):
        parse_token_storage(data)
