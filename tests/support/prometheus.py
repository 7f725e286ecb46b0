"""A real Prometheus for tests: Debian's ``prometheus`` binary (deploy/local/install-deps
installs it) on 127.0.0.1 with a free port and a private data directory, configured with
deploy/prometheus/render.py, and asked through its HTTP API."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tests.support.ports import LOOPBACK, free_port
from tests.support.processes import terminate
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
_START_ATTEMPTS = 3


def load_render():
    """deploy/prometheus/render.py as a module."""
    return load_script("deploy/prometheus/render.py")


class PrometheusNotInstalled(RuntimeError):
    """No prometheus binary on PATH."""


class PrometheusError(RuntimeError):
    """Prometheus did not start, or its API answered an error; the message says which."""


class PrometheusServer:
    def __init__(self, config_text: str, workdir: Path, ready_timeout_s: float = 30.0) -> None:
        self.binary = shutil.which("prometheus")
        if self.binary is None:
            raise PrometheusNotInstalled("prometheus is not installed: deploy/local/install-deps installs it")
        self.workdir = workdir
        self.config_file = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.ready_timeout_s = ready_timeout_s
        self.config_file.write_text(config_text)
        self.port: Optional[int] = None
        self._proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> "PrometheusServer":
        for _ in range(_START_ATTEMPTS):  # another process may take the free port first
            self.port = free_port()
            argv = load_render().command(self.binary, self.config_file, self.workdir / "data",
                                         f"{LOOPBACK}:{self.port}")
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
            if self._wait_ready():
                return self
            if "address already in use" not in self.log_tail():
                break
        raise PrometheusError(f"prometheus did not become ready:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with _open(f"{self.url}/-/ready", timeout_s=1) as response:
                    if response.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        terminate(self._proc)
        return False

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc)

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of one /api/v1 answer; an error answer raises PrometheusError with its message."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with _open(f"{self.url}/api/v1/{path}{query}", timeout_s=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"/api/v1/{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> List[Dict[str, Any]]:
        """An instant query's series: [{"metric": {...}, "value": [ts, "v"]}, ...]."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr!r} is a {data['resultType']}, not a vector")
        return data["result"]

    def active_targets(self) -> List[Dict[str, Any]]:
        return self.api("targets", state="active")["activeTargets"]


def _open(url: str, timeout_s: float):
    # Never through a proxy from the environment: everything is on loopback.
    return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=timeout_s)


# Grafana's own interval variables, as Grafana would fill them for a recent time range.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def dashboard_queries(dashboard: Dict[str, Any], variables: Dict[str, str]) -> List[Tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable of a Grafana dashboard, its
    variables substituted as Grafana would; ``label_values(expr, label)`` becomes the query
    Grafana runs for it (the series of expr, counted by label)."""
    found: List[Tuple[str, str]] = []

    def walk(panels: List[Dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((f"panel {panel['title']!r} {target.get('refId', '')}".strip(), target["expr"]))

    walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((?:(.*),\s*)?(\w+)\)", query.strip())
        if not match:
            raise ValueError(f"variable {variable['name']}: only label_values(...) is supported, got {query!r}")
        selector = match.group(1) or f'{{{match.group(2)}!=""}}'
        found.append((f"variable {variable['name']!r}", f"count by ({match.group(2)}) ({selector})"))
    values = {**GRAFANA_BUILTINS, **variables}

    def substitute(match: "re.Match[str]") -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise ValueError(f"no value for the dashboard variable ${name}")
        return values[name]

    pattern = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
    return [(where, pattern.sub(substitute, expr)) for where, expr in found]
