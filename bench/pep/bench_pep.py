#!/usr/bin/env python3
"""The HAProxy Lua enforcement point's ceiling (issue 18, item 5), all real: tritonserver
(tests/models), tarn-authz on the demo's policies, and HAProxy 2.6 rendered from
deploy/haproxy/haproxy-authz.cfg.tmpl, against HAProxy alone to the same Triton.

Each HAProxy below has the same frontend (basic auth against one userlist) and backend; they
differ only in the authorization step:
  alone        no authorization (the baseline)
  pep-hit      the template with tarn-authz's SPOE agent, decisions cached (TTL 60 s): every
               request after the first is served by HAProxy's own decision cache (the
               tarn_decisions table), without Lua or the agent
  pep-miss     the same, no cache (TTL 0): every request is asked of the SPOE agent (SPOP,
               pipelined, on a unix socket)
  lua-miss     the template without the agent, no cache: every request runs the Lua action,
               which asks tarn-authz over HTTP (/authorize)
  lua-hit      as pep-hit without HAProxy's cache rule: every request runs the Lua action,
               answered from its per-thread cache (what served hits before the table)
  lua-shared   as lua-hit, but `lua-load` (one Lua state under a global lock) instead of the
               template's `lua-load-per-thread`: shows what the per-thread states buy
  lua-noop     a Lua action that fetches the same values and allows everything (noop_action.lua):
               what running any Lua action per request costs
wrk (-t1, pinned to one core) sends `GET /v2/models/identity` as alice, the configurations
alternating for several rounds, with HAProxy alone before and after each round, so that load
from elsewhere falls on all alike; each ratio is the median of the rounds' ratios.
Targets: pep-hit >= 0.9x alone, pep-miss >= 0.5x alone. Exits 1 on a miss."""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "deploy" / "haproxy"), str(ROOT / "deploy" / "local")]
import render_authz  # noqa: E402  (deploy/haproxy)
import tarnstack  # noqa: E402  (deploy/local)
from tarn_gateway_sync.haproxy import RuntimeApi  # noqa: E402

from tests.support.ports import free_ports  # noqa: E402
from tests.support.triton import TritonServer  # noqa: E402
from tests.support.triton_fixture import copy_model_repository  # noqa: E402

SERVICE = "triton_demo"
POLICIES = ROOT / "deploy" / "demo" / "policies"
TOKEN = "bench-pep-gateway-token"
USER, PASSWORD = "alice", "alice-bench"
TARGETS = {"pep-hit": 0.9, "pep-miss": 0.5}

ALONE = """global
    stats socket {run_dir}/alone.sock mode 600 level admin
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 50s
    timeout server 50s
userlist tarn_users
    user {user} insecure-password {password}
frontend alone
    bind 127.0.0.1:{port}
    http-request auth realm triton unless {{ http_auth(tarn_users) }}
    http-request del-header Authorization
    default_backend triton_backend
backend triton_backend
    server triton1 {triton}
"""


def wait_200(url: str, headers: dict, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 in {timeout_s} s")


def haproxy(cfg: Path, text: str) -> subprocess.Popen:
    cfg.write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy rejected {cfg}:\n{check.stdout}{check.stderr}")
    log = open(cfg.with_suffix(".log"), "ab")
    return subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def run_wrk(url: str, auth: str, core: str, seconds: int, connections: int) -> tuple:
    """(requests/s, requests sent)."""
    argv = ["taskset", "-c", core, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
            "-H", f"Authorization: {auth}", f"{url}/v2/models/identity"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), int(re.search(r"(\d+) requests in", out).group(1))


CACHE_RULE = re.compile(r"^ *http-request set-var\(txn\.tarn_authz\) str\(allow\) if .*tarn_decisions.*\n", re.M)


def without_haproxy_cache(text: str) -> str:
    """The rendered configuration without the rule that answers from HAProxy's decision cache."""
    text, found = CACHE_RULE.subn("", text)
    if found != 1:
        raise RuntimeError("the template's decision cache rule was not found")
    return text


def haproxy_cache_hits(admin_socket: Path) -> int:
    """The requests HAProxy's decision cache served, summed over tarn_decision_hits (an entry
    lasts three audit rounds, 15 s, past its last hit: read it around one round only)."""
    text = asyncio.run(RuntimeApi(str(admin_socket)).execute("show table tarn_decision_hits"))
    return sum(int(n) for n in re.findall(r"http_req_cnt=(\d+)", text))


def start_authz(run_dir: Path, port: int) -> subprocess.Popen:
    """tarn-authz on the demo's policies, answering on ``port`` and its SPOE agent on
    run_dir/spoa.sock (its log in run_dir)."""
    env = dict(os.environ, TARN_AUTHZ_GATEWAY_TOKEN=TOKEN, TARN_AUTHZ_CACHE_DIR=str(run_dir / "authz-cache"),
               TARN_AUTHZ_SPOA_SOCKET=str(run_dir / "spoa.sock"),
               TARN_AUTHZ_SERVE_DEPLOYMENTS="false", TARN_AUTHZ_LOG_JSON="false", TARN_AUTHZ_LOG_LEVEL="WARNING")
    with open(run_dir / "authz.log", "ab") as log:
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "tarn-authz"), "--ranger-service", SERVICE, "--policy-dir", str(POLICIES),
             "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_200(f"http://127.0.0.1:{port}/healthz", {})
    except BaseException:
        tarnstack.stop_pid(proc.pid)
        raise
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-core", default="0")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("haproxy"):
        print("bench/pep needs wrk and haproxy (deploy/local/install-deps installs them)", file=sys.stderr)
        return 1
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    procs: list = []
    with tempfile.TemporaryDirectory(prefix="pep-bench-") as tmp:
        run_dir = Path(tmp)
        triton = TritonServer(copy_model_repository(run_dir / "models"), log_path=run_dir / "triton.log").start()
        try:
            authz_port, *ports = free_ports(14)
            procs.append(start_authz(run_dir, authz_port))
            urls = {"alone": f"http://127.0.0.1:{ports[0]}"}
            procs.append(haproxy(run_dir / "alone.cfg", ALONE.format(
                run_dir=run_dir, user=USER, password=PASSWORD, port=ports[0], triton=triton.http_host_port)))
            for i, (name, ttl) in enumerate((("pep-hit", 60.0), ("pep-miss", 0.0), ("lua-miss", 0.0),
                                              ("lua-hit", 60.0), ("lua-shared", 60.0), ("lua-noop", 60.0)), start=1):
                sub = run_dir / name
                sub.mkdir()
                text = render_authz.render(
                    run_dir=sub, http_port=ports[2 * i - 1], index_port=ports[2 * i],
                    authz_url=f"http://127.0.0.1:{authz_port}", gateway_token=TOKEN,
                    users=[f"user {USER} insecure-password {PASSWORD}"],
                    servers=[f"server triton1 {triton.http_host_port}"], cache_ttl_s=ttl,
                    spoa_socket=run_dir / "spoa.sock" if name.startswith("pep-") else None,
                    **({"lua_file": HERE / "noop_action.lua"} if name == "lua-noop" else {}))
                if name in ("lua-hit", "lua-shared", "lua-noop"):
                    text = without_haproxy_cache(text)
                if name == "lua-shared":
                    text = text.replace("lua-load-per-thread ", "lua-load ")
                procs.append(haproxy(sub / "haproxy.cfg", text))
                urls[name] = f"http://127.0.0.1:{ports[2 * i - 1]}"
            for url in urls.values():
                wait_200(f"{url}/v2/models/identity", {"Authorization": auth})
                run_wrk(url, auth, args.wrk_core, 1, args.connections)  # warm-up
            rates: dict = {name: [] for name in urls}
            sent = served = 0
            hits_socket = run_dir / "pep-hit" / "haproxy-authz.sock"
            for _ in range(args.rounds):
                for name, url in urls.items():
                    before = haproxy_cache_hits(hits_socket) if name == "pep-hit" else 0
                    rate, requests = run_wrk(url, auth, args.wrk_core, args.seconds, args.connections)
                    rates[name].append(rate)
                    if name == "pep-hit":
                        sent, served = sent + requests, served + haproxy_cache_hits(hits_socket) - before
            rates["alone"].append(run_wrk(urls["alone"], auth, args.wrk_core, args.seconds, args.connections)[0])
        finally:
            for proc in procs:
                tarnstack.stop_pid(proc.pid)
            triton.stop()
    return report(args, rates, sent, served)


def paired(rates: dict, name: str, base: str) -> float:
    """The median over rounds of name's rate against base's in the same round; "alone" runs before
    and after every round, and a round compares with the mean of the two, so that the machine's
    drift over the run (large on a shared VM) falls out."""
    if base == "alone":
        bases = [(a + b) / 2 for a, b in zip(rates["alone"], rates["alone"][1:])]
    else:
        bases = rates[base]
    return statistics.median(r / b for r, b in zip(rates[name], bases))


def report(args, rates: dict, sent: int, served: int) -> int:
    print(f"pep: wrk -t1 -c{args.connections} -d{args.seconds}s x {args.rounds} rounds on core {args.wrk_core}, "
          f"GET /v2/models/identity as {USER}, load average {os.getloadavg()[0]:.1f}")
    for name, values in rates.items():
        print(f"  {name:<10} {statistics.median(values):9.0f} requests/s  ({', '.join(f'{r:.0f}' for r in values)})")
    missed = 0
    for name in rates:
        if name == "alone":
            continue
        ratio = paired(rates, name, "alone")
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"target >= {target}x: met" if ratio >= target else
                                             f"target >= {target}x: MISSED by {target - ratio:.2f}x")
        missed += bool(target is not None and ratio < target)
        print(f"  {name:<10} {ratio:5.2f}x alone (median of the rounds' ratios)  {verdict}")
    print(f"  pep-hit: {served} of its {sent} measured requests served by HAProxy's decision cache")
    print(f"  HAProxy's decision cache vs the Lua's (pep-hit / lua-hit): {paired(rates, 'pep-hit', 'lua-hit'):.2f}x")
    print(f"  misses over SPOP vs over HTTP from the Lua (pep-miss / lua-miss): "
          f"{paired(rates, 'pep-miss', 'lua-miss'):.2f}x")
    print(f"  per-thread Lua states vs one shared (lua-hit / lua-shared): {paired(rates, 'lua-hit', 'lua-shared'):.2f}x")
    print(f"  lua-hit vs lua-noop (the action's own work on a hit): {paired(rates, 'lua-hit', 'lua-noop'):.2f}x")
    if served < 0.99 * sent:  # a decision expiring (TTL 60 s) during a round is asked once more
        print("  pep-hit: HAProxy's cache served fewer than 99% of them")
        missed += 1
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
