"""HDFS checksums recomputed locally; the values here were read from the minicluster's WebHDFS."""
import os
import random

import crc32c
import pytest

from tarn_node_agent.checksums import (CompositeCrcVerifier, Md5Md5CrcVerifier, RemoteChecksum, UnsupportedChecksum,
                                       expected_hex, verifier_for)


def feed(verifier, data, sizes):
    view, pos = memoryview(data), 0
    for size in sizes:
        verifier.update(view[pos:pos + size])
        pos += size
    verifier.update(view[pos:])
    return verifier.digest_hex()


def test_md5md5crc_is_the_same_whatever_the_chunking():
    data = random.Random(1).randbytes(3 * 4096 + 1234)
    whole = feed(Md5Md5CrcVerifier("CRC32C", 512, 4096), data, [])
    odd = feed(Md5Md5CrcVerifier("CRC32C", 512, 4096), data, [1, 511, 513, 7, 4096, 3000])
    assert whole == odd


def test_an_empty_file_has_hadoops_fixed_md5():
    # GETFILECHECKSUM of an empty file on Hadoop 3.4: MD5 over a zeroed 32-byte buffer.
    assert Md5Md5CrcVerifier("CRC32C", 512, 4096).digest_hex() == "70bc8f4b72a86921468bf8e8441dce51"


def test_composite_crc_is_the_crc_of_the_whole_file():
    data = os.urandom(10_000)
    remote = RemoteChecksum("COMPOSITE-CRC32C", f"{crc32c.crc32c(data):08x}", 4)
    verifier = verifier_for(remote, 0)
    assert isinstance(verifier, CompositeCrcVerifier)
    assert feed(verifier, data, [3, 999]) == expected_hex(remote)


def test_the_md5_is_taken_from_hadoops_serialized_bytes():
    remote = RemoteChecksum("MD5-of-0MD5-of-512CRC32C",
                            "00000200000000000000000032348247bd216e9940d09f0dfd31b5f600000000", 28)
    assert expected_hex(remote) == "32348247bd216e9940d09f0dfd31b5f6"
    assert isinstance(verifier_for(remote, 134217728), Md5Md5CrcVerifier)


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(UnsupportedChecksum):
        verifier_for(RemoteChecksum("SHA-256", "00", 1), 512)
