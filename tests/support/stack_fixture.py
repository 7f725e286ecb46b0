"""pytest fixtures on the real local stack (deploy/local/tarnstack.py).

The servers start once per test session in a private run directory; each test gets its
own deployment name (so its own streams), ZooKeeper chroot and HAProxy backend.
"""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
TEST_BACKENDS = 6


def _load_tarnstack():
    return load_script("deploy/local/tarnstack.py")


tarnstack = _load_tarnstack()


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator["tarnstack.Stack"]:
    """Real Redis, ZooKeeper and HAProxy; a failure to start fails the tests with the reason."""
    local = tarnstack.Stack(tmp_path_factory.mktemp("stack"))
    try:
        local.up(test_backends=TEST_BACKENDS)
    except tarnstack.StackError as exc:
        pytest.fail(f"the local stack did not start: {exc}", pytrace=False)
    yield local
    local.down()


@pytest.fixture
def redis_url(stack) -> str:
    return stack.env["REDIS_URL"]


@pytest.fixture
def deployment() -> str:
    """A deployment name of the test's own: every stream key is derived from it."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def zk_hosts(stack) -> Iterator[str]:
    """A connection string rooted at a fresh chroot, removed after the test."""
    from kazoo.client import KazooClient

    chroot = f"/tarn-test-{uuid.uuid4().hex[:12]}"
    client = KazooClient(hosts=stack.env["ZK_HOSTS"])
    client.start(timeout=15)
    client.ensure_path(chroot)
    try:
        yield stack.env["ZK_HOSTS"] + chroot
    finally:
        client.delete(chroot, recursive=True)
        client.stop()
        client.close()


def expire_zk_session(client, hosts: str) -> None:
    """Expire ``client``'s ZooKeeper session for real, as kazoo's harness does: a second
    client joins the same session and closes it."""
    from kazoo.client import KazooClient

    twin = KazooClient(hosts=hosts, client_id=client.client_id)
    twin.start(timeout=15)
    twin.stop()
    twin.close()


@pytest.fixture
def expire_session(zk_hosts):
    """``expire_session(client)``: end a kazoo client's session on the test's chroot."""
    return lambda client: expire_zk_session(client, zk_hosts)


class _BackendPool:
    def __init__(self, backends: List[Dict]) -> None:
        self.free = list(backends)


@pytest.fixture(scope="session")
def _haproxy_pool(stack) -> _BackendPool:
    return _BackendPool(stack.state["test_backends"])


def _clear_backend(sock: str, backend: Dict) -> None:
    """Leave the backend as the config made it: dynamic servers deleted, slots disabled."""
    state = tarnstack.haproxy_command(sock, f"show servers state {backend['name']}")
    for line in state.splitlines()[2:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        server = fields[3]
        tarnstack.haproxy_command(sock, f"set server {backend['name']}/{server} state maint")
        if backend["kind"] == "dyn":
            tarnstack.haproxy_command(sock, f"shutdown sessions server {backend['name']}/{server}")
            tarnstack.haproxy_command(sock, f"del server {backend['name']}/{server}")
        else:
            tarnstack.haproxy_command(sock, f"set server {backend['name']}/{server} addr 0.0.0.0 port 8000")


@pytest.fixture
def haproxy_backend(stack, _haproxy_pool) -> Iterator[Dict]:
    """One HAProxy backend of each kind ("dyn": dynamic servers, "slots": the seeds'
    placeholder slots) for this test alone, with the frontend port that reaches it."""
    taken = []
    for kind in ("dyn", "slots"):
        backend = next((b for b in _haproxy_pool.free if b["kind"] == kind), None)
        if backend is None:
            pytest.fail("no free HAProxy test backend left; raise TEST_BACKENDS", pytrace=False)
        _haproxy_pool.free.remove(backend)
        taken.append(backend)
    try:
        yield {b["kind"]: b for b in taken} | {"socket": stack.env["HAPROXY_SOCKET"]}
    finally:
        for backend in taken:
            _clear_backend(stack.env["HAPROXY_SOCKET"], backend)
            _haproxy_pool.free.append(backend)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run(coro):
    """Run a coroutine to completion from a synchronous test."""
    return asyncio.run(coro)
