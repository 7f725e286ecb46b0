"""Credential files made by Hadoop's own CredentialShell, read from HDFS."""
from __future__ import annotations

import os

import pytest

from tarn_node_agent.errors import SecretsError
from tarn_node_agent.hdfs import Hdfs
from tarn_node_agent.secrets import map_to_environment
from tarn_shared.jceks import decode_keystore
from tests.hadoop.cluster import create_jceks

pytestmark = [pytest.mark.integration, pytest.mark.hadoop]


@pytest.fixture(scope="module")
def jceks_path(hadoop_cluster):
    path = f"/tarn-test/node-agent-secrets/{os.getpid()}.jceks"
    create_jceks(hadoop_cluster, path, {"huggingface.token": "hf_SECRET_1", "tarn.env.MY_VAR": "value-2"})
    yield path
    hadoop_cluster.webhdfs_client().delete(path)


def read(cluster, path):
    return Hdfs.connect(cluster.webhdfs_url, auth="simple", user="root", environ={}).read_bytes(path)


def test_aliases_from_credentialshell_become_tritons_environment(hadoop_cluster, jceks_path):
    secrets = decode_keystore(read(hadoop_cluster, jceks_path), "none", jceks_path)

    assert map_to_environment(secrets).values == {"HUGGING_FACE_HUB_TOKEN": "hf_SECRET_1", "MY_VAR": "value-2"}


def test_a_wrong_store_password_is_a_clear_error_without_values(hadoop_cluster, jceks_path):
    with pytest.raises(SecretsError, match="wrong store password") as failure:
        decode_keystore(read(hadoop_cluster, jceks_path), "not-the-password", jceks_path)
    assert "hf_SECRET_1" not in str(failure.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_file_is_a_clear_error(hadoop_cluster, jceks_path, damage):
    data = read(hadoop_cluster, jceks_path)
    broken = data[: len(data) // 2] if damage == "truncate" else b"\x00" * 64
    with pytest.raises(SecretsError, match="not a readable JCEKS keystore|wrong store password or a damaged file"):
        decode_keystore(broken, "none", jceks_path)
