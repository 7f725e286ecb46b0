"""A real HAProxy rendered from deploy/haproxy/haproxy-authz.cfg.tmpl (render_authz.py), checked
with `haproxy -c`, started, and waited for: the one way the gateway tests start it."""
from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

import httpx

from tests.support.ports import free_port
from tests.support.scripts import load_script
from tests.support.stack_fixture import tarnstack


@contextlib.contextmanager
def haproxy_authz(tmp: Path, passwords: Mapping[str, str], what: str,
                  ready: Optional[Callable[[str], bool]] = None, **render_options) -> Iterator[str]:
    """Yields the HTTP frontend's URL once ``ready(url)`` holds (default: Triton ready through
    it, as alice); ``render_options`` go to render_authz.render (authz_url, gateway_token,
    servers, grpc_port, ...)."""
    ready = ready or (lambda url: _health_ready(url, ("alice", passwords["alice"])))
    http_port = free_port()
    cfg = tmp / "haproxy.cfg"
    render_options.setdefault("index_port", free_port())
    cfg.write_text(load_script("deploy/haproxy/render_authz.py").render(
        run_dir=tmp, http_port=http_port,
        users=[f"user {u} insecure-password {p}" for u, p in passwords.items()], **render_options))
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log_path = tmp / "haproxy.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{http_port}"
    try:
        tarnstack.wait_until(lambda: ready(url), what, log_path, proc)
        yield url
    finally:
        tarnstack.stop_pid(proc.pid)


def _health_ready(url: str, auth) -> bool:
    try:
        return httpx.get(url + "/v2/health/ready", auth=auth, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
