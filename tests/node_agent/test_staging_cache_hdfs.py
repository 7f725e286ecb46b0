"""The node cache and ranged reads against the real HDFS minicluster through WebHDFS."""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hdfs.client import _Request

from tarn_node_agent.node_cache import NodeCache
from tarn_node_agent.errors import ChecksumMismatch, StagingError
from tarn_node_agent.hdfs import Hdfs
from tarn_node_agent.staging import Stager

pytestmark = [pytest.mark.integration, pytest.mark.hadoop]
MIB = 1 << 20


class RecordingHdfs(Hdfs):
    """The real adapter, recording each read's (path, offset, length); ``damage(path, n, chunk)``
    may cut (raise) or alter the n-th chunk of a read, as a failing network would."""

    def __init__(self, url: str, damage=None) -> None:
        base = Hdfs.connect(url, auth="simple", user="root", environ={})
        super().__init__(base._client, base.description)
        self.reads = []
        self.checksums = []
        self._damage = damage

    def checksum(self, path):
        self.checksums.append(path)
        return super().checksum(path)

    @contextmanager
    def open(self, path, chunk_bytes=256 * 1024, offset=0, length=None):
        self.reads.append((path, offset, length))
        with super().open(path, chunk_bytes=256 * 1024, offset=offset, length=length) as chunks:
            yield (self._damage(path, n, c) if self._damage else c for n, c in enumerate(chunks))


_unknown_operation = _Request("GET").to_method("NO_SUCH_OPERATION")


class OldWebHdfs(RecordingHdfs):
    """A WebHDFS from before Hadoop 3.4, which has no GETFILEBLOCKLOCATIONS: the real server's
    answer to an operation it does not know."""

    def block_lengths(self, path, length):
        return self._call("reading the block locations of", path, lambda: _unknown_operation(self._client, path))


def stager(hdfs: Hdfs, staging: Path, cache: Path, **kwargs) -> Stager:
    return Stager(hdfs, staging, cache=NodeCache(cache, kwargs.pop("max_bytes", 1 << 40)), **kwargs)


@pytest.fixture
def big_file(webhdfs, hdfs_models):
    payload = os.urandom(6 * MIB + 123)  # seven 1 MiB blocks, the last one short
    webhdfs.write(f"{hdfs_models}/identity/1/weights.bin", data=payload, blocksize=MIB)
    return payload


def objects(cache: Path):
    return [p for p in (cache / "objects").glob("*/*") if not p.name.startswith(".")]


def test_a_large_file_is_read_as_parallel_ranges_and_verified_whole(hadoop_cluster, hdfs_models, big_file, tmp_path):
    hdfs = RecordingHdfs(hadoop_cluster.webhdfs_url)
    staged = stager(hdfs, tmp_path / "view", tmp_path / "cache", range_bytes=2 * MIB).stage("repo", hdfs_models)

    assert (staged.path / "identity/1/weights.bin").read_bytes() == big_file
    ranges = sorted((o, n) for p, o, n in hdfs.reads if p.endswith("weights.bin"))
    assert ranges == [(0, 2 * MIB), (2 * MIB, 2 * MIB), (4 * MIB, 2 * MIB), (6 * MIB, 123)]


def test_a_concatenated_file_whose_blocks_are_not_all_block_size_is_verified(hadoop_cluster, webhdfs, hdfs_models,
                                                                           tmp_path):
    target = f"{hdfs_models}/identity/1/weights.bin"
    data = concatenated(hadoop_cluster, webhdfs, target)
    hdfs = RecordingHdfs(hadoop_cluster.webhdfs_url)
    assert hdfs.block_lengths(target, len(data)) == [MIB, MIB // 2 + 7, MIB, 300]

    staged = stager(hdfs, tmp_path / "view", tmp_path / "cache", range_bytes=MIB).stage("repo", hdfs_models)

    assert (staged.path / "identity/1/weights.bin").read_bytes() == data


def concatenated(hadoop_cluster, webhdfs, target: str) -> bytes:
    parts = [os.urandom(MIB + MIB // 2 + 7), os.urandom(MIB + 300)]
    webhdfs.write(target, data=parts[0], blocksize=MIB)
    webhdfs.write(f"{target}.part", data=parts[1], blocksize=MIB)
    # HdfsCLI has no concat; WebHDFS's CONCAT leaves the first file's short last block in the middle.
    response = webhdfs._session.post(f"{hadoop_cluster.webhdfs_url}/webhdfs/v1{target}",
                                     params={"op": "CONCAT", "sources": f"{target}.part", "user.name": "root"})
    assert response.status_code == 200, response.text
    return b"".join(parts)


def test_without_block_locations_blocks_are_assumed_regular_and_an_irregular_file_is_refused_clearly(
        hadoop_cluster, webhdfs, hdfs_models, big_file, tmp_path):
    hdfs = OldWebHdfs(hadoop_cluster.webhdfs_url)
    with pytest.raises(StagingError):
        hdfs.block_lengths(f"{hdfs_models}/identity/1/weights.bin", len(big_file))
    staged = stager(hdfs, tmp_path / "view", tmp_path / "cache", range_bytes=2 * MIB).stage("repo", hdfs_models)
    assert (staged.path / "identity/1/weights.bin").read_bytes() == big_file  # regular blocks: verified

    concatenated(hadoop_cluster, webhdfs, f"{hdfs_models}/add_sub/1/weights.bin")
    with pytest.raises(ChecksumMismatch, match="a concatenated or appended file cannot be verified without "
                                               "GETFILEBLOCKLOCATIONS"):
        stager(hdfs, tmp_path / "view", tmp_path / "cache", range_bytes=MIB).stage("repo", hdfs_models)


def test_a_cut_stream_resumes_where_it_stopped_and_the_file_still_verifies(hadoop_cluster, hdfs_models, big_file,
                                                                          tmp_path):
    cuts = []

    def cut_once(path, n, chunk):
        if path.endswith("weights.bin") and n == 2 and not cuts:  # after two 256 KiB chunks
            cuts.append(path)
            raise StagingError("WebHDFS error while reading: ChunkedEncodingError")
        return chunk

    hdfs = RecordingHdfs(hadoop_cluster.webhdfs_url, damage=cut_once)
    first = stager(hdfs, tmp_path / "view", tmp_path / "cache", range_bytes=8 * MIB)
    staged = first.stage("repo", hdfs_models)

    assert (staged.path / "identity/1/weights.bin").read_bytes() == big_file
    weights = [(o, n) for p, o, n in hdfs.reads if p.endswith("weights.bin")]
    assert weights == [(0, len(big_file)), (512 * 1024, len(big_file) - 512 * 1024)]
    assert first.progress.bytes_done == first.progress.bytes_total  # resumed bytes counted once


def test_a_corrupted_download_is_refused_and_never_enters_the_cache(hadoop_cluster, hdfs_models, big_file, tmp_path):
    def flip(path, n, chunk):
        return bytes([chunk[0] ^ 1]) + chunk[1:] if path.endswith("weights.bin") and n == 1 else chunk

    hdfs = RecordingHdfs(hadoop_cluster.webhdfs_url, damage=flip)
    with pytest.raises(ChecksumMismatch, match="weights.bin: checksum MD5-of-2048MD5-of-512CRC32C"):
        stager(hdfs, tmp_path / "view", tmp_path / "cache", range_bytes=2 * MIB).stage("repo", hdfs_models)
    assert not any(p.stat().st_size == len(big_file) for p in objects(tmp_path / "cache"))
    assert not any(p.name.startswith(".partial-") for p in (tmp_path / "cache" / "objects").glob("*/*"))


def test_two_deployments_share_one_copy_and_a_replacement_container_restages_from_the_cache(
        hadoop_cluster, hdfs_models, big_file, tmp_path):
    cache = tmp_path / "cache"
    first = stager(RecordingHdfs(hadoop_cluster.webhdfs_url), tmp_path / "deployment-a", cache)
    a = first.stage(f"hdfs://{hdfs_models}", hdfs_models)
    second = stager(RecordingHdfs(hadoop_cluster.webhdfs_url), tmp_path / "deployment-b", cache)
    b = second.stage(f"hdfs://{hdfs_models}", hdfs_models)

    assert first.progress.bytes_done == a.downloaded_bytes > len(big_file)
    assert second.progress.bytes_done == 0 and b.cached_files == a.cached_files + len(objects(cache))
    inodes = {(p.path / "identity/1/weights.bin").stat().st_ino for p in (a, b)}
    assert len(inodes) == 1 and (a.path / "identity/1/weights.bin").stat().st_nlink == 3  # cache + two views

    shutil.rmtree(tmp_path / "deployment-a")  # the container ended; YARN deleted its directory
    replacement_hdfs = RecordingHdfs(hadoop_cluster.webhdfs_url)
    replacement = stager(replacement_hdfs, tmp_path / "replacement", cache)
    started = time.monotonic()
    again = replacement.stage(f"hdfs://{hdfs_models}", hdfs_models)
    elapsed = time.monotonic() - started

    assert replacement.progress.bytes_done == 0 and replacement_hdfs.reads == [] == replacement_hdfs.checksums
    assert (again.path / "identity/1/weights.bin").read_bytes() == big_file
    assert elapsed < 1.0, f"restage from the node cache took {elapsed:.2f} s"


def test_a_full_cache_evicts_the_files_no_container_links(hadoop_cluster, webhdfs, hdfs_dir, tmp_path):
    repos = {}
    for name in ("old", "new"):
        repos[name] = f"{hdfs_dir}/{name}"
        webhdfs.write(f"{repos[name]}/m/config.pbtxt", data=b'name: "m"\n')
        webhdfs.write(f"{repos[name]}/m/1/weights.bin", data=os.urandom(3 * MIB))
    cache = tmp_path / "cache"
    hdfs = RecordingHdfs(hadoop_cluster.webhdfs_url)
    stager(hdfs, tmp_path / "old", cache, max_bytes=4 * MIB).stage("old", repos["old"])
    stager(hdfs, tmp_path / "kept", cache, max_bytes=4 * MIB).stage("old", repos["old"])
    shutil.rmtree(tmp_path / "old")

    stager(hdfs, tmp_path / "new", cache, max_bytes=4 * MIB).stage("new", repos["new"])
    # "old" is still linked by the "kept" view: over the cap, it stays; nothing else can go.
    assert len([p for p in objects(cache) if p.stat().st_size == 3 * MIB]) == 2
    shutil.rmtree(tmp_path / "kept")

    stager(hdfs, tmp_path / "newer", cache, max_bytes=4 * MIB).stage("new", repos["new"])
    big = [p for p in objects(cache) if p.stat().st_size == 3 * MIB]
    assert len(big) == 1 and big[0].stat().st_nlink == 3  # the new repository's, linked by two views


def test_a_file_evicted_from_the_cache_is_downloaded_and_verified_again(hadoop_cluster, hdfs_models, big_file,
                                                                       tmp_path):
    cache = tmp_path / "cache"
    stager(RecordingHdfs(hadoop_cluster.webhdfs_url), tmp_path / "first", cache).stage("repo", hdfs_models)
    shutil.rmtree(tmp_path / "first")
    for path in objects(cache):
        path.unlink()  # evicted; the remembered checksums stay

    hdfs = RecordingHdfs(hadoop_cluster.webhdfs_url)
    again = stager(hdfs, tmp_path / "again", cache)
    staged = again.stage("repo", hdfs_models)

    assert again.progress.bytes_done == staged.downloaded_bytes > len(big_file)
    assert any(p.endswith("weights.bin") for p in hdfs.checksums)  # verified against HDFS, not the memo
    assert (staged.path / "identity/1/weights.bin").read_bytes() == big_file
