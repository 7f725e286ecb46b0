"""JCEKS credential files made by Hadoop's own CredentialShell land in HDFS."""
from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.hadoop.cluster import CREDENTIAL, HadoopCluster, create_jceks

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(180)]

JCEKS_MAGIC = bytes.fromhex("cececece")


def test_credential_shell_writes_a_jceks_file_into_hdfs(hadoop_cluster: HadoopCluster, webhdfs):
    path = f"/user/root/tarn-{uuid.uuid4().hex[:8]}/secrets.jceks"
    provider = create_jceks(hadoop_cluster, path, {
        "huggingface.token": "hf_example_value",
        "tarn.env.API_KEY": "k-123",
    })
    try:
        assert provider == f"jceks://hdfs@{hadoop_cluster.namenode_authority}{path}"
        status = webhdfs.status(path)
        assert status["type"] == "FILE" and status["length"] > 0
        assert status["permission"] == "600"  # Hadoop's keystore provider writes it private
        with webhdfs.read(path) as reader:
            assert reader.read(4) == JCEKS_MAGIC

        listed = subprocess.run([str(CREDENTIAL), "list", "--provider", provider],
                                env=dict(hadoop_cluster.env), capture_output=True, text=True,
                                timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert {"huggingface.token", "tarn.env.api_key"} <= set(listed.stdout.lower().split())
    finally:
        webhdfs.delete(path.rsplit("/", 1)[0], recursive=True)


def test_credential_shell_writes_a_local_jceks_file(hadoop_cluster: HadoopCluster, tmp_path):
    store = tmp_path / "local.jceks"
    result = subprocess.run([str(CREDENTIAL), "create", "db.password", "--value", "pw",
                             "--provider", f"jceks://file{store}"],
                            env=dict(hadoop_cluster.env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert store.read_bytes()[:4] == JCEKS_MAGIC
