"""render_authz.py's gRPC part: present only with a gRPC port, and then accepted by HAProxy."""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.scripts import load_script

ARGS = dict(http_port=18080, index_port=18079, authz_url="http://127.0.0.1:8096", gateway_token="gw-token",
            users=["user alice insecure-password alice-pw"], index_secret="index-secret")


def test_without_a_grpc_port_nothing_of_grpc_is_rendered(tmp_path: Path):
    text = load_script("deploy/haproxy/render_authz.py").render(run_dir=tmp_path, **ARGS)
    for part in ("tarn_authz_grpc.lua", "triton_grpc", "proto h2", "tune.bufsize", "grpc:", "${"):
        assert part not in text, part
    assert text.count("lua-load-per-thread") == 1


def test_with_a_grpc_port_haproxy_accepts_the_h2_frontend_and_backend(tmp_path: Path):
    text = load_script("deploy/haproxy/render_authz.py").render(
        run_dir=tmp_path, grpc_port=18081, grpc_servers=["server t1 127.0.0.1:8001 check"], grpc_max_message=1 << 20,
        **ARGS)
    assert "bind 127.0.0.1:18081 proto h2" in text and "tune.bufsize 1064960" in text
    assert "setenv TARN_AUTHZ_GRPC_MAX_MESSAGE 1048576" in text and "    server t1 127.0.0.1:8001 check" in text
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
