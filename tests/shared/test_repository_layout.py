"""The model-repository layout rule `tarn submit` and the node-agent share: safe listing
paths, WebHDFS statuses as entries, what a Triton layout is."""
import pytest

from tarn_shared.repository_layout import (LayoutError, RemoteEntry, RepositoryError, check_layout, checked_relative,
                                           entry_from_status, layout_problems, relative_to)


def entries(*specs):
    return [RemoteEntry(p.rstrip("/"), p.endswith("/"), 10 if not p.endswith("/") else 0, 1) for p in specs]


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/abs", "a//b", "a/./b", "a\x00b", ""])
def test_listing_paths_that_could_escape_the_staging_dir_are_refused(path):
    with pytest.raises(RepositoryError, match="unsafe path"):
        checked_relative(path)


def test_a_path_below_the_root_is_made_relative_and_one_outside_is_refused():
    assert relative_to("/models", "/models/a/1/model.py") == "a/1/model.py"
    with pytest.raises(RepositoryError):
        relative_to("/models", "/other/a")


def test_a_valid_layout_lists_its_models():
    listing = entries("a/", "a/config.pbtxt", "a/1/", "a/1/model.py", "b/", "b/3/", ".hidden")
    assert check_layout(listing, "repo") == ["a", "b"]


@pytest.mark.parametrize("listing,problem", [
    (entries("a/", "a/config.pbtxt"), "model 'a' has no numeric version directory"),
    (entries("a/", "a/v1/", "a/v1/model.py"), "model 'a' has no numeric version directory"),
    (entries("a/", "a/01/"), "model 'a' has no numeric version directory"),
    (entries("a/", "a/1"), "model 'a' has no numeric version directory"),  # a file named 1
    (entries("README.md", "a/", "a/1/"), "'README.md' is a file"),
    ([], "holds no model directory"),
    (entries(".crc/", ".crc/1/"), "holds no model directory"),
])
def test_a_bad_layout_names_the_problem(listing, problem):
    with pytest.raises(LayoutError, match=problem) as failure:
        check_layout(listing, "hdfs://nn/repo")
    assert "hdfs://nn/repo" in str(failure.value)


def test_every_problem_is_named_at_once():
    models, problems = layout_problems(entries("README.md", "a/", "a/config.pbtxt", "b/", "b/2/"))
    assert models == ["README.md", "a", "b"]
    assert problems == ["'README.md' is a file; each top-level entry must be a model directory",
                        "model 'a' has no numeric version directory (e.g. a/1/)"]


def test_a_webhdfs_status_reads_as_an_entry():
    directory = {"type": "DIRECTORY", "modificationTime": 1700000000123, "length": 0, "pathSuffix": "1"}
    file = {"type": "FILE", "modificationTime": 1700000000456, "length": 2048, "blockSize": 134217728}
    assert entry_from_status("a/1", directory) == RemoteEntry("a/1", True, 0, 1700000000123)
    assert entry_from_status("a/1/model.onnx", file) == RemoteEntry("a/1/model.onnx", False, 2048, 1700000000456,
                                                                      134217728)
