"""Pure staging rules: manifests and whether a staged copy is current (the layout rule is tarn_shared's:
tests/shared/test_repository_layout.py)."""
import pytest

from tarn_node_agent.errors import StagingError
from tarn_node_agent.repository import Manifest, is_unchanged
from tarn_shared.repository_layout import LayoutError, RemoteEntry, check_layout


def entries(*specs):
    return [RemoteEntry(p.rstrip("/"), p.endswith("/"), 10 if not p.endswith("/") else 0, 1) for p in specs]


def test_the_shared_rules_raise_staging_errors_the_agent_catches():
    # staging.py ignores a manifest naming an unsafe path by catching StagingError.
    with pytest.raises(StagingError, match="unsafe path"):
        Manifest.from_json({"source": "s", "directory": "d",
                            "entries": [{"path": "../x", "dir": False, "size": 1, "mtime_ms": 1}]})
    with pytest.raises(StagingError):
        check_layout(entries("a/", "a/config.pbtxt"), "hdfs://nn/repo")
    assert issubclass(LayoutError, StagingError)


def test_an_identical_listing_is_unchanged_and_a_changed_file_is_not():
    listing = entries("a/", "a/1/", "a/1/w.bin", "a/config.pbtxt")
    previous = Manifest("hdfs://nn/r", "repo-1", tuple(listing),
                        {"a/1/w.bin": "sum1", "a/config.pbtxt": "sum2"})

    assert is_unchanged("hdfs://nn/r", listing, previous)

    changed = [e if e.path != "a/config.pbtxt" else RemoteEntry(e.path, False, 11, 2) for e in listing]
    assert not is_unchanged("hdfs://nn/r", changed, previous)
    assert not is_unchanged("hdfs://nn/r", listing, None)


def test_another_source_is_never_unchanged():
    listing = entries("a/", "a/1/", "a/1/w.bin")
    previous = Manifest("hdfs://nn/other", "repo-1", tuple(listing), {"a/1/w.bin": "x"})
    assert not is_unchanged("hdfs://nn/r", listing, previous)


def test_manifest_round_trips_through_json():
    listing = tuple(entries("a/", "a/1/", "a/1/w.bin"))
    manifest = Manifest("hdfs://nn/r", "repo-1", listing, {"a/1/w.bin": "MD5:ab"})
    assert Manifest.from_json(manifest.to_json()) == manifest
