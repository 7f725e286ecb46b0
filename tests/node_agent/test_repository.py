"""Pure repository rules: safe paths, Triton layout, staging plans."""
import pytest

from tarn_node_agent.errors import LayoutError, StagingError
from tarn_node_agent.repository import Manifest, RemoteEntry, check_layout, checked_relative, plan_staging


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/abs", "a//b", "a/./b", "a\x00b"])
def test_listing_paths_that_could_escape_the_staging_dir_are_refused(path):
    with pytest.raises(StagingError):
        checked_relative(path)


def entries(*specs):
    return [RemoteEntry(p.rstrip("/"), p.endswith("/"), 10 if not p.endswith("/") else 0, 1) for p in specs]


def test_a_valid_layout_lists_its_models():
    listing = entries("a/", "a/config.pbtxt", "a/1/", "a/1/model.py", "b/", "b/3/", ".hidden")
    assert check_layout(listing, "repo") == ["a", "b"]


@pytest.mark.parametrize("listing,problem", [
    (entries("a/", "a/config.pbtxt"), "model 'a' has no numeric version directory"),
    (entries("a/", "a/v1/", "a/v1/model.py"), "model 'a' has no numeric version directory"),
    (entries("a/", "a/01/"), "model 'a' has no numeric version directory"),
    (entries("README.md", "a/", "a/1/"), "'README.md' is a file"),
    ([], "holds no model directory"),
])
def test_a_bad_layout_names_the_problem(listing, problem):
    with pytest.raises(LayoutError, match=problem):
        check_layout(listing, "hdfs://nn/repo")


def test_an_identical_listing_is_unchanged_and_a_changed_file_alone_is_downloaded():
    listing = entries("a/", "a/1/", "a/1/w.bin", "a/config.pbtxt")
    previous = Manifest("hdfs://nn/r", "repo-1", tuple(listing),
                        {"a/1/w.bin": "sum1", "a/config.pbtxt": "sum2"})

    assert plan_staging("hdfs://nn/r", listing, previous).unchanged

    changed = [e if e.path != "a/config.pbtxt" else RemoteEntry(e.path, False, 11, 2) for e in listing]
    plan = plan_staging("hdfs://nn/r", changed, previous)
    assert not plan.unchanged
    assert [e.path for e in plan.download] == ["a/config.pbtxt"]
    assert [e.path for e in plan.reuse] == ["a/1/w.bin"]


def test_another_source_downloads_everything():
    listing = entries("a/", "a/1/", "a/1/w.bin")
    previous = Manifest("hdfs://nn/other", "repo-1", tuple(listing), {"a/1/w.bin": "x"})
    plan = plan_staging("hdfs://nn/r", listing, previous)
    assert [e.path for e in plan.download] == ["a/1/w.bin"] and not plan.reuse


def test_manifest_round_trips_through_json():
    listing = tuple(entries("a/", "a/1/", "a/1/w.bin"))
    manifest = Manifest("hdfs://nn/r", "repo-1", listing, {"a/1/w.bin": "MD5:ab"})
    assert Manifest.from_json(manifest.to_json()) == manifest
