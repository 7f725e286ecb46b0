"""A real HAProxy 2.6 routing per model, rendered by deploy/haproxy/render_model_routes.py: per
backend its own frontend, its model slot backends and its model map, optionally with the
cold-start hold (deploy/haproxy/tarn_cold_start.lua). The gateway of the per-model tests."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_gateway_sync.plan import Admin
from tests.support.ports import free_port
from tests.support.scripts import load_script
from tests.support.stack_fixture import tarnstack

BACKEND = "triton_backend"
render = load_script("deploy/haproxy/render_model_routes.py")


class ModelHaproxy:
    """``start()`` (again: a restart, which loses the runtime servers and map entries), ``stop()``."""

    def __init__(self, tmp_path: Path, backends: Sequence[str] = (BACKEND,), slots: int = 2,
                 check_inter: str = "1s", cold_start_url: Optional[str] = None, cold_wait_s: float = 60.0,
                 retry_after_s: int = 7) -> None:
        self.backends = list(backends)  # the first is the methods' default
        self.socket, self.log = str(tmp_path / "h.sock"), tmp_path / "haproxy.log"
        self.ports = {b: free_port() for b in backends}
        self.maps = {b: render.map_path(tmp_path, b) for b in backends}
        lines = ["global", f"    stats socket {self.socket} mode 600 level admin"]
        if cold_start_url:
            lines.append(render.global_lines(cold_start_url, cold_wait_s))
        lines += ["defaults", "    mode http", "    timeout connect 2s", "    timeout client 30s",
                  "    timeout server 30s", "    timeout http-request 5s"]
        for backend in backends:
            render.write_empty_map(self.maps[backend])
            rules = (render.frontend_rules(backend, self.maps[backend], cold_start=True, retry_after_s=retry_after_s)
                     if cold_start_url else render.frontend_rules(backend, self.maps[backend]))
            lines += [f"frontend fe_{backend}", f"    bind 127.0.0.1:{self.ports[backend]}", rules,
                      f"    default_backend {backend}",
                      f"backend {backend}", "    balance roundrobin", "    option httpchk GET /v2/health/ready",
                      "    default-server inter 1s fall 2 rise 1", "",
                      render.slot_backends(backend, slots, check_inter=check_inter)]
        self.cfg = tmp_path / "haproxy.cfg"
        self.cfg.write_text("\n".join(lines))
        check = subprocess.run(["haproxy", "-c", "-f", str(self.cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "ModelHaproxy":
        self.stop()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.cfg)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        tarnstack.wait_until(lambda: "Name: HAProxy" in tarnstack.haproxy_command(self.socket, "show info"),
                             "haproxy with model slots", self.log, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            tarnstack.stop_pid(self.proc.pid)
            self.proc = None

    def url(self, backend: Optional[str] = None) -> str:
        return f"http://127.0.0.1:{self.ports[backend or self.backends[0]]}"

    def map_file(self, backend: Optional[str] = None) -> str:
        return str(self.maps[backend or self.backends[0]])

    def slots(self, backend: Optional[str] = None) -> Dict[str, str]:
        """model -> its slot backend, as the map says now."""
        out = {}
        for line in tarnstack.haproxy_command(self.socket, f"show map {self.map_file(backend)}").splitlines():
            parts = line.split()
            if len(parts) == 3:
                out[parts[1]] = parts[2]
        return out

    def serving(self, model: str, backend: Optional[str] = None) -> List[str]:
        """``ip:port`` of the servers up and ready in the model's slot backend."""
        slot = self.slots(backend).get(model)
        if slot is None:
            return []
        servers = asyncio.run(RuntimeApi(self.socket).servers(slot))
        return sorted(f"{s.ip}:{s.port}" for s in servers if s.admin is Admin.READY and s.operational_up
                      and s.ip != "0.0.0.0")

    def dump(self) -> str:
        return "\n".join(tarnstack.haproxy_command(self.socket, c)
                         for c in [f"show map {m}" for m in self.maps.values()] + ["show servers state"])
