"""A real HAProxy 2.6 routing per model with the cold-start hold (deploy/haproxy/tarn_cold_start.lua),
rendered by render_model_routes.py: the gateway of the scale-to-zero tests."""
from __future__ import annotations

import subprocess

from tests.support.ports import free_port
from tests.support.scripts import load_script
from tests.support.stack_fixture import tarnstack

BACKEND = "triton_backend"
render = load_script("deploy/haproxy/render_model_routes.py")


def start_haproxy(tmp_path, cold_start_url: str, wait_s: float):
    """(process, Runtime API socket, frontend URL, model map path); stop it with tarnstack.stop_pid."""
    port, map_file = free_port(), render.map_path(tmp_path, BACKEND)
    render.write_empty_map(map_file)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("\n".join([
        "global", f"    stats socket {tmp_path}/h.sock mode 600 level admin",
        render.global_lines(cold_start_url, wait_s),
        "defaults", "    mode http", "    timeout connect 2s", "    timeout client 30s", "    timeout server 30s",
        "    timeout http-request 5s",
        "frontend fe", f"    bind 127.0.0.1:{port}",
        render.frontend_rules(BACKEND, map_file, cold_start=True, retry_after_s=7),
        f"    default_backend {BACKEND}",
        f"backend {BACKEND}", "    balance roundrobin", "    option httpchk GET /v2/health/ready",
        "    default-server inter 1s fall 2 rise 1", "",
        render.slot_backends(BACKEND, 2, check_inter="500ms")]))
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log_path, socket_path = tmp_path / "haproxy.log", str(tmp_path / "h.sock")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    tarnstack.wait_until(lambda: "Name: HAProxy" in tarnstack.haproxy_command(socket_path, "show info"),
                         "haproxy with cold start", log_path, proc)
    return proc, socket_path, f"http://127.0.0.1:{port}", str(map_file)
