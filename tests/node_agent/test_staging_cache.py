"""The node cache's rules (pure) and its behaviour on a real local filesystem: atomic
publication, hard-linked views, LRU eviction of unused files, one download per key across
processes; and the byte-range plan of ranged reads."""
from __future__ import annotations

import multiprocessing
import os
import random
import time
from pathlib import Path

import pytest

from tarn_node_agent.node_cache import CachedObject, NodeCache, content_key, eviction_order, node_cache_dir
from tarn_node_agent.checksums import Md5Md5CrcVerifier, md5_of_block_digests
from tarn_node_agent.errors import StagingError
from tarn_node_agent.transfer import ByteRange, nominal_blocks, plan_ranges


def obj(key: str, size: int, last_used: float, in_use: bool = False) -> CachedObject:
    return CachedObject(key, Path(key), size, last_used, in_use)


def test_eviction_removes_the_least_recently_used_unused_files_until_the_new_ones_fit():
    objects = [obj("old", 40, 1.0), obj("in-use-oldest", 40, 0.5, in_use=True), obj("mid", 40, 2.0),
               obj("new", 40, 3.0)]
    chosen = eviction_order(objects, max_bytes=150, incoming_bytes=50)
    assert [o.key for o in chosen] == ["old", "mid"]  # 160 + 50 - 150 = 60 bytes over


def test_nothing_is_evicted_under_the_cap_and_files_in_use_never_are():
    assert eviction_order([obj("a", 10, 1.0)], max_bytes=100, incoming_bytes=10) == []
    assert eviction_order([obj("a", 10, 1.0, in_use=True)], max_bytes=1, incoming_bytes=10) == []


def test_the_default_cache_sits_beside_yarns_application_dirs_on_the_staging_disk(tmp_path):
    disks = [tmp_path / d / "usercache" / "alice" / "appcache" / "application_1_0001" for d in ("d1", "d2")]
    for d in disks:
        d.mkdir(parents=True)
    staging = disks[1] / "container_1_0001_01_000002" / "tarn-models"
    local_dirs = ",".join(str(d) for d in disks)
    assert node_cache_dir(staging, local_dirs) == tmp_path / "d2" / "usercache" / "alice" / "tarn-cache"


def test_outside_yarn_or_where_the_node_dir_is_another_filesystem_the_cache_is_the_staging_dirs_own(tmp_path):
    staging = tmp_path / "tarn-models"
    assert node_cache_dir(staging, None) == staging / ".cache"
    mounted = "/nm/usercache/alice/appcache/application_1_0001"  # in Docker: only this is the node's disk
    assert node_cache_dir(staging, mounted) == staging / ".cache"
    assert node_cache_dir(staging, mounted, same_filesystem=lambda a, b: False) == staging / ".cache"


def test_the_content_key_depends_on_path_length_and_checksum():
    keys = {content_key("/m/a", 1, "x"), content_key("/m/b", 1, "x"), content_key("/m/a", 2, "x"),
            content_key("/m/a", 1, "y")}
    assert len(keys) == 4


def test_a_file_is_published_whole_and_never_visible_while_written(tmp_path):
    cache = NodeCache(tmp_path / "cache", 1 << 30)
    key = content_key("/m/a", 5, "x")
    view = tmp_path / "view"
    view.mkdir()

    def write(partial: Path) -> None:
        partial.write_bytes(b"12345")
        assert not cache.object_path(key).exists()

    assert cache.fill(key, 5, view / "a", write)
    assert (view / "a").read_bytes() == b"12345"
    assert os.stat(view / "a").st_ino == os.stat(cache.object_path(key)).st_ino
    assert not any(p.name.startswith(".partial-") for p in cache.object_path(key).parent.iterdir())


def test_a_failed_write_leaves_nothing_in_the_cache(tmp_path):
    cache = NodeCache(tmp_path / "cache", 1 << 30)
    key = content_key("/m/a", 5, "x")

    def write(partial: Path) -> None:
        partial.write_bytes(b"12")
        raise StagingError("cut short")

    with pytest.raises(StagingError):
        cache.fill(key, 5, tmp_path / "a", write)
    assert list(cache.object_path(key).parent.iterdir()) == []
    assert not cache.link_into(key, 5, tmp_path / "a")


def test_an_object_of_the_wrong_length_is_not_linked(tmp_path):
    cache = NodeCache(tmp_path / "cache", 1 << 30)
    key = content_key("/m/a", 5, "x")
    cache.object_path(key).parent.mkdir(parents=True)
    cache.object_path(key).write_bytes(b"12")  # e.g. cut short by a crash
    assert not cache.link_into(key, 5, tmp_path / "a")
    assert not cache.object_path(key).exists()


def test_eviction_keeps_files_a_view_still_links_and_removes_unused_ones_oldest_first(tmp_path):
    cache = NodeCache(tmp_path / "cache", max_bytes=250)
    views = tmp_path / "views"
    views.mkdir()
    for n, name in enumerate(["a", "b", "c"]):
        key = content_key(f"/m/{name}", 100, "x")
        cache.fill(key, 100, views / name, lambda p: p.write_bytes(b"x" * 100))
        os.utime(cache.object_path(key), (1000 + n, 1000 + n))
    (views / "a").unlink()  # its container ended
    (views / "b").unlink()

    evicted, freed = cache.make_room(100)

    assert (evicted, freed) == (2, 200)  # 300 + 100 > 250: a and b, unused; c is linked
    assert cache.object_path(content_key("/m/c", 100, "x")).exists()


def _fill_in_process(root: str, target: str, counter: str) -> None:
    cache = NodeCache(Path(root), 1 << 30)

    def write(partial: Path) -> None:
        with open(counter, "a") as out:
            out.write("downloaded\n")
        partial.write_bytes(b"z" * 1000)

    cache.fill(content_key("/m/shared", 1000, "x"), 1000, Path(target), write)


def test_concurrent_containers_download_a_file_once_and_share_it(tmp_path):
    counter = tmp_path / "downloads"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_fill_in_process, args=(str(tmp_path / "cache"), str(tmp_path / f"view{i}"),
                                                       str(counter))) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert counter.read_text().count("downloaded") == 1
    assert len({os.stat(tmp_path / f"view{i}").st_ino for i in range(4)}) == 1


def test_ranges_group_whole_blocks_including_short_ones():
    blocks = [4, 4, 2, 4, 4, 1]
    ranges = plan_ranges(19, blocks, range_bytes=8)
    assert ranges == [ByteRange(0, 8, (4, 4)), ByteRange(8, 10, (2, 4, 4)), ByteRange(18, 1, (1,))]


def test_without_block_lengths_ranges_are_plain_cuts_and_blocks_must_add_up():
    assert plan_ranges(10, (), 4) == [ByteRange(0, 4), ByteRange(4, 4), ByteRange(8, 2)]
    with pytest.raises(StagingError, match="blocks hold 9 bytes, its length is 10"):
        plan_ranges(10, [4, 5], 4)


def test_ranges_verified_apart_give_the_whole_files_checksum():
    data = random.Random(7).randbytes(3 * 4096 + 1000)
    blocks = [4096, 3000, 4096, 2096]  # a short block in the middle, as concat makes
    whole = Md5Md5CrcVerifier("CRC32C", 512, 4096, blocks)
    whole.update(data)
    digests = []
    for r in plan_ranges(len(data), blocks, 5000):
        part = Md5Md5CrcVerifier("CRC32C", 512, 4096, r.blocks)
        part.update(data[r.offset:r.offset + r.length])
        digests.extend(part.block_digests())
    assert md5_of_block_digests(digests) == whole.digest_hex()


def test_published_files_are_read_only_so_no_view_writes_into_the_cache(tmp_path):
    cache = NodeCache(tmp_path / "cache", 1 << 30)
    key = content_key("/m/a", 3, "x")
    cache.fill(key, 3, tmp_path / "a", lambda p: p.write_bytes(b"abc"))
    assert (cache.object_path(key).stat().st_mode & 0o777) == 0o444


def test_a_remembered_checksum_is_forgotten_after_a_month_unused(tmp_path):
    now = [time.time()]
    cache = NodeCache(tmp_path / "cache", 1 << 30, clock=lambda: now[0])
    cache.remember_checksum("/m/a", 3, 7, "MD5-of-0MD5-of-512CRC32C:abc")
    cache.remember_checksum("/m/b", 3, 7, "MD5-of-0MD5-of-512CRC32C:def")
    assert cache.remembered_checksum("/m/a", 3, 8) is None  # another mtime: another version

    now[0] += 20 * 86400
    assert cache.remembered_checksum("/m/a", 3, 7) == "MD5-of-0MD5-of-512CRC32C:abc"  # used: kept longer
    now[0] += 11 * 86400
    cache.make_room(0)
    assert cache.remembered_checksum("/m/a", 3, 7) == "MD5-of-0MD5-of-512CRC32C:abc"
    assert cache.remembered_checksum("/m/b", 3, 7) is None


def test_nominal_blocks_are_block_size_long_but_the_last():
    assert nominal_blocks(10, 4) == [4, 4, 2] and nominal_blocks(8, 4) == [4, 4] and nominal_blocks(0, 4) == []
