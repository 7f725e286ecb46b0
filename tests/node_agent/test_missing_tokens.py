"""The node-agent on a Kerberized cluster (core-site.xml: hadoop.security.authentication=kerberos)
without the HDFS delegation token it needs: one line naming the file system, what is read
there and the variable to look at, before any request is made. Token files are Hadoop's own
(data/MakeTokenFiles.java: an HDFS token for 127.0.0.1:8020)."""
import sys
from pathlib import Path

import pytest

from tarn_node_agent.errors import TokenFileError
from tarn_node_agent.preparation import hdfs_client
from tarn_node_agent.settings import NodeAgentSettings

TOKENS = Path(__file__).parent / "data" / "tokens-writable.hdts"
REPOSITORY = "the model repository"


def conf_dir(tmp_path: Path, authentication: str) -> str:
    (tmp_path / "core-site.xml").write_text(
        "<configuration><property><name>hadoop.security.authentication</name>"
        f"<value>{authentication}</value></property></configuration>")
    (tmp_path / "hdfs-site.xml").write_text(
        "<configuration><property><name>dfs.namenode.http-address</name>"
        "<value>0.0.0.0:9870</value></property></configuration>")
    return str(tmp_path)


def connect(tmp_path, environ, authority="localhost:8020", authentication="kerberos", purpose=REPOSITORY,
            hdfs_auth="auto"):
    settings = NodeAgentSettings(model_repository=f"hdfs://{authority}/models", hdfs_auth=hdfs_auth,
                                 container_id="container_1700000000000_0042_01_000002", tritonserver=sys.executable)
    environ = dict(environ, HADOOP_CONF_DIR=conf_dir(tmp_path, authentication))
    return hdfs_client(settings, environ, authority, purpose)


def test_a_kerberized_cluster_without_a_token_file_names_the_file_system_and_the_variable(tmp_path):
    with pytest.raises(TokenFileError) as caught:
        connect(tmp_path, {})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("no HDFS delegation token for hdfs://localhost:8020 (the model repository): "
                              "HADOOP_TOKEN_FILE_LOCATION is not set and the cluster is Kerberized"), message
    assert "tarn submit --principal P --keytab K" in message and "KRB5CCNAME or KRB5_CLIENT_KTNAME" in message


def test_a_token_file_without_the_secrets_file_systems_token_names_that_file_system_and_the_tokens_held(tmp_path):
    with pytest.raises(TokenFileError) as caught:
        connect(tmp_path, {"HADOOP_TOKEN_FILE_LOCATION": str(TOKENS)}, authority="10.9.9.9:8020",
                purpose="the credential file, --secrets")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"no HDFS delegation token for hdfs://10.9.9.9:8020 (the credential file, --secrets) "
                              f"in HADOOP_TOKEN_FILE_LOCATION={TOKENS} (its HDFS tokens: 127.0.0.1:8020)"), message
    assert "--model-repository and --secrets" in message


def test_hdfs_auth_token_without_a_token_file_says_so(tmp_path):
    with pytest.raises(TokenFileError, match=r"^no HDFS delegation token for hdfs://localhost:8020 \(the model "
                                             r"repository\): HADOOP_TOKEN_FILE_LOCATION is not set and hdfs_auth "
                                             r"is 'token'"):
        connect(tmp_path, {}, authentication="simple", hdfs_auth="token")


def test_the_token_for_the_namenodes_address_is_used_whatever_name_the_uri_gives_it(tmp_path):
    # Hadoop names the token's service by the NameNode's IP; the URI says localhost.
    hdfs = connect(tmp_path, {"HADOOP_TOKEN_FILE_LOCATION": str(TOKENS)})
    assert hdfs.description == "http://localhost:9870 (token auth)"


def test_a_ticket_stands_in_for_a_missing_token(tmp_path):
    hdfs = connect(tmp_path, {"KRB5CCNAME": f"FILE:{tmp_path / 'cc'}"}, authority="10.9.9.9:8020")
    assert hdfs.description == "http://10.9.9.9:9870 (kerberos auth)"


def test_an_unsecured_cluster_without_tokens_still_uses_simple_auth(tmp_path):
    hdfs = connect(tmp_path, {}, authentication="simple")
    assert hdfs.description == "http://localhost:9870 (simple auth)"
