"""Fixtures for the node-agent's tests, on top of the root conftest's minicluster
(tests/hadoop/cluster.py), tritonserver and local stack."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture
def hdfs_dir(webhdfs) -> str:
    """An HDFS directory of the test's own, removed afterwards."""
    path = f"/tarn-test/node-agent/{uuid.uuid4().hex[:12]}"
    webhdfs.makedirs(path)
    yield path
    webhdfs.delete(path, recursive=True)


@pytest.fixture
def hdfs_models(webhdfs, hdfs_dir) -> str:
    """tests/models uploaded to HDFS; returns its HDFS path."""
    target = f"{hdfs_dir}/models"
    webhdfs.upload(target, str(MODELS_DIR), n_threads=1)
    for leftover in [p for p, _, _ in webhdfs.walk(target) if p.endswith("__pycache__")]:
        webhdfs.delete(leftover, recursive=True)
    return target
