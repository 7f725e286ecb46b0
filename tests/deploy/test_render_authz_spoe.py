"""render_authz.py's SPOE part (--authz-spoa-socket): absent without a socket; with one, the engine's
file is written beside the configuration, HAProxy accepts both, and an allow is stored for the
whole seconds of the TTL only."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.test_render_authz_grpc import ARGS
from tests.support.scripts import load_script


def render(tmp_path: Path, **options) -> str:
    return load_script("deploy/haproxy/render_authz.py").render(run_dir=tmp_path, **{**ARGS, **options})


def test_without_a_socket_no_spoe_is_rendered_and_misses_stay_with_the_lua(tmp_path: Path):
    text = render(tmp_path)
    for part in ("filter spoe", "send-spoe-group", "tarn_spoa", "txn.tarn.allowed", "${"):
        assert part not in text, part
    assert not (tmp_path / "tarn-authz-spoe.conf").exists()


def test_with_a_socket_haproxy_accepts_the_filter_the_engine_file_and_the_agent_backend(tmp_path: Path):
    socket = tmp_path / "authz-spoa.sock"
    text = render(tmp_path, spoa_socket=socket, timeout_ms=750, grpc_port=18081)
    engine = (tmp_path / "tarn-authz-spoe.conf").read_text()
    assert f"filter spoe engine tarn config {tmp_path / 'tarn-authz-spoe.conf'}" in text
    assert f"server authz unix@{socket}" in text
    assert "timeout processing 750ms" in engine and "args user=var(txn.tarn_user)" in engine
    # The message goes only to plain model paths not already answered by HAProxy's cache;
    # the Lua runs for everything else.
    send = text.index("send-spoe-group tarn tarn-check if { var(txn.tarn_action) -m found }")
    assert text.index("table_gpt0(tarn_decisions)") < send < text.index("lua.tarn_authz unless")
    assert text.count("filter spoe") == 1  # the gRPC frontend keeps its Lua action
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("ttl, stored", [(0.0, None), (0.9, None), (1.0, 1), (2.5, 2), (60.0, 60)])
def test_an_allow_from_the_agent_is_kept_the_whole_seconds_of_the_ttl_never_past_it(tmp_path: Path, ttl, stored):
    text = render(tmp_path, spoa_socket=tmp_path / "s.sock", cache_ttl_s=ttl)
    found = re.findall(r"set-var\(txn\.tarn_cache_until\) date,add\((\d+)\)", text)
    assert found == ([] if stored is None else [str(stored)])


@pytest.mark.parametrize("path", ["/run/with space/s.sock", "/run/'quoted'.sock", "/run/#s.sock"])
def test_a_socket_path_haproxy_would_misread_is_refused(tmp_path: Path, path):
    with pytest.raises(ValueError, match="socket's path"):
        render(tmp_path, spoa_socket=Path(path))
