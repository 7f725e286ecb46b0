"""HDFS through WebHDFS from Python with HdfsCLI (the `hdfs` package)."""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.hadoop.cluster import HADOOP_DIR, HadoopCluster

import hdfs

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(180)]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def hdfs_dir(webhdfs) -> str:
    path = f"/tmp/tarn-test-{uuid.uuid4().hex[:8]}"
    yield path
    webhdfs.delete(path, recursive=True)


def test_a_directory_tree_put_lists_and_gets_back_identical(webhdfs, hdfs_dir, tmp_path):
    local = tmp_path / "model-repo"
    (local / "resnet" / "1").mkdir(parents=True)
    (local / "resnet" / "config.pbtxt").write_text('name: "resnet"\nbackend: "python"\n')
    (local / "resnet" / "1" / "model.py").write_text("class TritonPythonModel: pass\n")
    (local / "resnet" / "1" / "weights.bin").write_bytes(bytes(range(256)) * 1200)
    (local / "empty.txt").write_bytes(b"")

    webhdfs.upload(f"{hdfs_dir}/repo", str(local), n_threads=2)

    assert sorted(webhdfs.list(f"{hdfs_dir}/repo")) == ["empty.txt", "resnet"]
    listed = {f"{root}/{name}".removeprefix(f"{hdfs_dir}/repo/")
              for root, _, files in webhdfs.walk(f"{hdfs_dir}/repo") for name in files}
    assert listed == set(_tree(local))
    weights = webhdfs.status(f"{hdfs_dir}/repo/resnet/1/weights.bin")
    assert weights["length"] == 256 * 1200 and weights["type"] == "FILE"

    copy = tmp_path / "copy"
    webhdfs.download(f"{hdfs_dir}/repo", str(copy), n_threads=2)
    assert _tree(copy) == _tree(local)


def test_reading_a_private_directory_as_another_user_fails_with_permission_denied(
        hadoop_cluster: HadoopCluster, webhdfs):
    home = f"/user/alice-{uuid.uuid4().hex[:6]}"
    webhdfs.makedirs(home)
    webhdfs.set_owner(home, owner="alice")
    webhdfs.set_permission(home, "700")
    alice = hadoop_cluster.webhdfs_client("alice")
    bob = hadoop_cluster.webhdfs_client("bob")
    try:
        alice.write(f"{home}/secret.txt", data=b"only alice")
        with alice.read(f"{home}/secret.txt") as reader:
            assert reader.read() == b"only alice"

        with pytest.raises(hdfs.HdfsError) as listing:
            bob.list(home)
        assert "Permission denied" in str(listing.value)
        assert "user=bob" in str(listing.value)
        assert home in str(listing.value)

        with pytest.raises(hdfs.HdfsError, match="Permission denied"):
            with bob.read(f"{home}/secret.txt") as reader:
                reader.read()
        with pytest.raises(hdfs.HdfsError, match="Permission denied"):
            bob.write(f"{home}/intruder.txt", data=b"x")
    finally:
        webhdfs.delete(home, recursive=True)


def _crc32c(data: bytes) -> int:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_hdfs_file_checksums_are_composite_crc32c_of_the_contents(
        hadoop_cluster: HadoopCluster, webhdfs, hdfs_dir):
    data = bytes(range(251)) * 400  # not a multiple of the 512-byte checksum chunk
    webhdfs.write(f"{hdfs_dir}/blob.bin", data=data)
    # Hadoop's own client, configured only by HADOOP_CONF_DIR (dfs.checksum.combine.mode).
    result = subprocess.run([str(HADOOP_DIR / "bin" / "hadoop"), "fs", "-checksum", f"{hdfs_dir}/blob.bin"],
                            env=dict(hadoop_cluster.env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    _, algorithm, value = result.stdout.split()
    assert algorithm == "COMPOSITE-CRC32C"
    assert int(value, 16) == _crc32c(data)


def test_webhdfs_checksums_stay_md5_of_crc_whatever_the_combine_mode(webhdfs, hdfs_dir):
    # Hadoop 3.4's DataNode WebHDFS handler always answers MD5MD5CRC32: clients over
    # WebHDFS cannot compare a composite CRC and must verify downloads another way.
    webhdfs.write(f"{hdfs_dir}/small.bin", data=b"tarn" * 1000)
    assert webhdfs.checksum(f"{hdfs_dir}/small.bin")["algorithm"].startswith("MD5-of-")
