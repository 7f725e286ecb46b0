"""render_authz.py and render_model_routes.py with cold start (a model scaled to zero held at
the gateway, tarn_cold_start.lua): accepted by HAProxy, its rules after authorization, and bad
options refused with a clear message."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.scripts import load_script

ARGS = dict(http_port=18080, index_port=18079, authz_url="http://127.0.0.1:8096", gateway_token="gw-token",
            users=["user alice insecure-password alice-pw"], index_secret="index-secret")
render_authz = load_script("deploy/haproxy/render_authz.py")


def test_cold_start_renders_a_config_haproxy_accepts_with_the_hold_after_authorization(tmp_path: Path):
    text = render_authz.render(run_dir=tmp_path, grpc_port=18081, model_slots=2,
                               cold_start_url="http://127.0.0.1:8095", cold_start_wait_s=45, retry_after_s=9, **ARGS)
    assert "setenv TARN_COLD_START_WAIT_S 45" in text and "tarn_cold_start.lua" in text
    assert text.index("http-request lua.tarn_authz unless") < text.index("http-request lua.tarn_cold_start")
    assert "hdr Retry-After 9" in text and "grpc-status 14" in text
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_cold_start_nothing_of_it_is_rendered(tmp_path: Path):
    text = render_authz.render(run_dir=tmp_path, model_slots=2, **ARGS)
    assert "tarn_cold_start" not in text and "TARN_COLD_START" not in text


@pytest.mark.parametrize("options,message", [
    (dict(cold_start_url="http://127.0.0.1:8095"), "needs --model-slots"),
    (dict(model_slots=1, cold_start_url="http://x y"), "without spaces"),
    (dict(model_slots=1, cold_start_url="ftp://127.0.0.1"), "http://host:port"),
    (dict(model_slots=1, cold_start_url="http://127.0.0.1:8095", cold_start_wait_s=0), "within 1..3600"),
])
def test_bad_cold_start_options_are_refused_clearly(tmp_path: Path, options, message):
    with pytest.raises(ValueError, match=message):
        render_authz.render(run_dir=tmp_path, **{**ARGS, **options})
