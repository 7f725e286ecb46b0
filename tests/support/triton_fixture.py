"""pytest plugin: a real tritonserver serving the test models in tests/models.

Register from the root conftest with ``pytest_plugins = ["tests.support.triton_fixture"]``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from tests.support.triton import TritonServer

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def copy_model_repository(destination: Path) -> Path:
    """Copy tests/models to ``destination`` (which must not exist) and return it."""
    # The python backend may write __pycache__ beside model.py; keep that out of the tree.
    shutil.copytree(MODELS_DIR, destination, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """One tritonserver for the session, every model in tests/models loaded (control mode none).

    Shared: tests must not load or unload models on it; use ``start_triton`` for that.
    """
    workdir = tmp_path_factory.mktemp("triton-session")
    server = TritonServer(copy_model_repository(workdir / "models"), log_path=workdir / "tritonserver.log")
    with server:
        yield server


@pytest.fixture
def triton_model_repo(tmp_path: Path) -> Path:
    """A private copy of tests/models the test may change."""
    return copy_model_repository(tmp_path / "models")


@pytest.fixture
def start_triton(tmp_path: Path) -> Iterator[Callable[..., TritonServer]]:
    """Start tritonservers of the test's own (``TritonServer`` keyword arguments); all stop at teardown."""
    servers: List[TritonServer] = []

    def start(model_repository: Path, **options: object) -> TritonServer:
        options.setdefault("log_path", tmp_path / f"tritonserver-{len(servers)}.log")
        server = TritonServer(model_repository, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.stop()
