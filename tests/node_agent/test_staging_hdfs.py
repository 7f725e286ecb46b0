"""Staging from the real HDFS minicluster through WebHDFS."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tarn_node_agent.errors import DiskFull, RepositoryNotFound, RepositoryPermissionDenied
from tarn_shared.repository_layout import LayoutError
from tarn_node_agent.hdfs import Hdfs
from tarn_node_agent.staging import CURRENT, Stager, use_in_place

from .conftest import MODELS_DIR

pytestmark = [pytest.mark.integration, pytest.mark.hadoop]


def stager(cluster, staging: Path, user: str = "root", **kwargs) -> Stager:
    return Stager(Hdfs.connect(cluster.webhdfs_url, auth="simple", user=user, environ={}), staging, **kwargs)


def test_a_repository_is_staged_verified_and_not_downloaded_again_when_unchanged(hadoop_cluster, hdfs_models, tmp_path):
    first = stager(hadoop_cluster, tmp_path).stage(f"hdfs://{hdfs_models}", hdfs_models)

    assert first.models == ["add_sub", "identity"] and not first.unchanged
    assert (tmp_path / CURRENT).resolve() == first.path.resolve()
    for name in ("identity/config.pbtxt", "add_sub/1/model.py"):
        assert (first.path / name).read_bytes() == (MODELS_DIR / name).read_bytes()

    again = stager(hadoop_cluster, tmp_path)
    started = time.monotonic()
    second = again.stage(f"hdfs://{hdfs_models}", hdfs_models)
    elapsed = time.monotonic() - started

    assert second.unchanged and second.path == first.path
    assert again.progress.bytes_done == 0
    assert elapsed < 1.0, f"unchanged restage took {elapsed:.2f} s"


def test_a_changed_file_is_downloaded_and_the_others_are_reused(hadoop_cluster, webhdfs, hdfs_models, tmp_path):
    first = stager(hadoop_cluster, tmp_path).stage("repo", hdfs_models)
    kept_inode = (first.path / "add_sub/1/model.py").stat().st_ino
    webhdfs.write(f"{hdfs_models}/identity/config.pbtxt",
                  data=(MODELS_DIR / "identity/config.pbtxt").read_bytes() + b"\n# changed\n", overwrite=True)

    again = stager(hadoop_cluster, tmp_path)
    second = again.stage("repo", hdfs_models)

    assert second.path != first.path and not first.path.exists()
    assert (second.path / "identity/config.pbtxt").read_bytes().endswith(b"# changed\n")
    assert (second.path / "add_sub/1/model.py").stat().st_ino == kept_inode
    assert again.progress.files_total == 1


def test_multi_block_files_are_verified_against_hdfs_checksums(hadoop_cluster, webhdfs, hdfs_models, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 777)  # four 1 MiB blocks, the last one partial
    webhdfs.write(f"{hdfs_models}/identity/1/weights.bin", data=payload, blocksize=1024 * 1024)
    assert webhdfs.checksum(f"{hdfs_models}/identity/1/weights.bin")["algorithm"].startswith("MD5-of-")

    staged = stager(hadoop_cluster, tmp_path, parallelism=2).stage("repo", hdfs_models)

    assert (staged.path / "identity/1/weights.bin").read_bytes() == payload


def test_a_missing_path_is_a_clear_error(hadoop_cluster, hdfs_dir, tmp_path):
    with pytest.raises(RepositoryNotFound, match=f"hdfs path {hdfs_dir}/nope does not exist"):
        stager(hadoop_cluster, tmp_path).stage("repo", f"{hdfs_dir}/nope")


def test_permission_denied_is_a_clear_error(hadoop_cluster, webhdfs, hdfs_models, tmp_path):
    webhdfs.set_permission(hdfs_models, "700")
    with pytest.raises(RepositoryPermissionDenied, match="permission denied"):
        stager(hadoop_cluster, tmp_path, user="nobody").stage("repo", hdfs_models)


def test_a_bad_layout_is_refused_and_the_current_copy_kept(hadoop_cluster, webhdfs, hdfs_models, tmp_path):
    good = stager(hadoop_cluster, tmp_path).stage("repo", hdfs_models)
    webhdfs.delete(f"{hdfs_models}/add_sub/1", recursive=True)

    with pytest.raises(LayoutError, match="model 'add_sub' has no numeric version directory"):
        stager(hadoop_cluster, tmp_path).stage("repo", hdfs_models)
    assert (tmp_path / CURRENT).resolve() == good.path.resolve()


def test_too_little_disk_is_refused_before_downloading(hadoop_cluster, hdfs_models, tmp_path):
    with pytest.raises(DiskFull, match="disk full: staging repo needs \\d+ bytes"):
        stager(hadoop_cluster, tmp_path, disk_free=lambda _: 10).stage("repo", hdfs_models)
    assert not any(p.name.startswith("repo-") for p in tmp_path.iterdir())


@pytest.fixture
def tiny_filesystem(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    assert result.returncode == 0, f"cannot mount a small tmpfs for the disk-full test: {result.stderr.decode()}"
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_filesystem_filling_up_while_writing_is_reported_as_disk_full(hadoop_cluster, webhdfs, hdfs_models,
                                                                      tiny_filesystem):
    webhdfs.write(f"{hdfs_models}/identity/1/weights.bin", data=os.urandom(256 * 1024))
    # statvfs says there is room (the check passes); the write itself then fails.
    with pytest.raises(DiskFull, match="no space left"):
        stager(hadoop_cluster, tiny_filesystem, disk_free=lambda _: 1 << 40).stage("repo", hdfs_models)


def test_an_absolute_path_is_used_in_place_after_the_layout_check(tmp_path):
    staged = use_in_place(str(MODELS_DIR))
    assert staged.path == MODELS_DIR and staged.models == ["add_sub", "identity"]
    (tmp_path / "m").mkdir()
    with pytest.raises(LayoutError, match="model 'm' has no numeric version directory"):
        use_in_place(str(tmp_path))
