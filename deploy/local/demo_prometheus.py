"""The demo's Prometheus: Debian's binary with deploy/prometheus/prometheus.yml.tmpl rendered
for the demo's tarn-am (targets found through its service discovery, the recording rules of
deploy/prometheus/tarn-rules.yml), on loopback, its data in the demo's directory.
Standard library only, like the rest of the demo's helpers."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Dict

from demo_support import DemoError, DemoState, free_port, http_status, wait_until

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "prometheus"
JOBS = ("tarn-am", "tarn-node-agent", "triton")
SCRAPE_INTERVAL = "5s"
START_TIMEOUT_S = 60.0


def _render_module():
    spec = importlib.util.spec_from_file_location("prometheus_render", PROMETHEUS_DIR / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scraped_jobs(url: str) -> Dict[str, int]:
    """Targets Prometheus scrapes successfully, counted by job; raises, saying why, while a job has none."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{url}/api/v1/targets?state=active", timeout=5) as response:
        targets = json.loads(response.read())["data"]["activeTargets"]
    counts: Dict[str, int] = {}
    for target in targets:
        if target["health"] == "up":
            counts[target["labels"]["job"]] = counts.get(target["labels"]["job"], 0) + 1
    missing = [job for job in JOBS if not counts.get(job)]
    if missing:
        errors = sorted({f"{t['scrapeUrl']}: {t['lastError']}" for t in targets if t.get("lastError")})
        raise RuntimeError(f"no target up for {', '.join(missing)}" + (f" ({'; '.join(errors)})" if errors else ""))
    return counts


def start_prometheus(state: DemoState, am_url: str, token: str) -> Dict[str, object]:
    """Render, check (promtool), start, and wait until tarn-am, a node-agent and a Triton are scraped."""
    binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not binary or not promtool:
        raise DemoError("prometheus is not installed: run deploy/local/install-deps")
    render = _render_module()
    token_file = state.dir / "prometheus-token"
    token_file.touch(mode=0o600)
    token_file.chmod(0o600)  # before the token is in it
    token_file.write_text(token)
    config = state.dir / "prometheus.yml"
    config.write_text(render.render(am_url, token_file, scrape_interval=SCRAPE_INTERVAL,
                                    sd_refresh_interval=SCRAPE_INTERVAL))
    check = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        raise DemoError(f"promtool rejected {config}:\n{check.stdout}{check.stderr}")
    url = f"http://127.0.0.1:{free_port()}"
    argv = render.command(binary, config, state.dir / "prometheus-data", url.split("://", 1)[1])
    proc = state.spawn("prometheus", argv, os.environ)
    log = state.dir / "prometheus.log"
    wait_until(lambda: http_status(f"{url}/-/ready") == 200, "Prometheus starting", START_TIMEOUT_S, log, proc)
    jobs = wait_until(lambda: scraped_jobs(url),
                      f"Prometheus scraping {', '.join(JOBS)} (found through {am_url}/api/prometheus/targets)",
                      START_TIMEOUT_S, log, proc, interval_s=0.5)
    return {"url": url, "jobs": jobs}
