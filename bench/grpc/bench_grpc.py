#!/usr/bin/env python3
"""The latency tarn_authz_grpc.lua adds to a gRPC infer (issue 14, item 2), all real:
tritonserver (tests/models), tarn-authz on the demo's policies, HAProxy 2.6 rendered from
deploy/haproxy/haproxy-authz.cfg.tmpl, against an HAProxy with the same HTTP/2 frontend
(basic auth against one userlist) and h2 backend but no Lua action.
  alone      no Lua action (the baseline)
  pep-hit    the action, decisions cached (TTL 60 s): the body is read and decoded, authz is not asked
  pep-miss   the action, no cache (TTL 0): every infer also asks tarn-authz over HTTP
One tritonclient.grpc client per configuration sends sequential ModelInfer calls on
`identity` as alice; the configurations alternate in blocks so load from elsewhere falls on
all alike. Targets: pep-hit adds <= 1 ms at p50 and <= 2 ms at p99 over alone; pep-miss
adds <= 3 ms at p50. Exits 1 on a miss."""
from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "deploy" / "haproxy"), str(ROOT / "deploy" / "local"), str(ROOT / "bench" / "pep")]
import numpy as np  # noqa: E402
import render_authz  # noqa: E402  (deploy/haproxy)
import tarnstack  # noqa: E402  (deploy/local)
import tritonclient.grpc as grpcclient  # noqa: E402
from bench_pep import TOKEN, haproxy, start_authz  # noqa: E402  (bench/pep)

from tests.support.ports import free_ports  # noqa: E402
from tests.support.triton import TritonServer  # noqa: E402
from tests.support.triton_fixture import copy_model_repository  # noqa: E402

USER, PASSWORD = "alice", "alice-bench"
# Added milliseconds over alone: (configuration, percentile) -> bound.
TARGETS = {("pep-hit", 50): 1.0, ("pep-hit", 99): 2.0, ("pep-miss", 50): 3.0}

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
    bind 127.0.0.1:{port} proto h2
    option http-buffer-request
    http-request return status 200 hdr grpc-status 16 unless {{ http_auth(tarn_users) }}
    http-request del-header Authorization
    http-after-response set-header content-type application/grpc unless {{ res.hdr(content-type) -m found }}
    default_backend triton_grpc_backend
backend triton_grpc_backend
    server triton1 {triton} proto h2
"""


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--infers", type=int, default=500, help="sequential infers per configuration")
    parser.add_argument("--block", type=int, default=50, help="infers per configuration before switching")
    args = parser.parse_args()
    headers = {"authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    tensor = grpcclient.InferInput("INPUT0", [1], "FP32")
    tensor.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    procs: list = []
    clients: dict = {}
    with tempfile.TemporaryDirectory(prefix="grpc-bench-") as tmp:
        run_dir = Path(tmp)
        triton = TritonServer(copy_model_repository(run_dir / "models"), log_path=run_dir / "triton.log").start()
        try:
            authz_port, *ports = free_ports(8)
            procs.append(start_authz(run_dir, authz_port))
            addresses = {"alone": f"127.0.0.1:{ports[0]}"}
            procs.append(haproxy(run_dir / "alone.cfg", ALONE.format(
                run_dir=run_dir, user=USER, password=PASSWORD, port=ports[0], triton=triton.grpc_url)))
            for i, (name, ttl) in enumerate((("pep-hit", 60.0), ("pep-miss", 0.0)), start=1):
                sub = run_dir / name
                sub.mkdir()
                procs.append(haproxy(sub / "haproxy.cfg", render_authz.render(
                    run_dir=sub, http_port=ports[3 * i - 2], index_port=ports[3 * i - 1], grpc_port=ports[3 * i],
                    authz_url=f"http://127.0.0.1:{authz_port}", gateway_token=TOKEN,
                    users=[f"user {USER} insecure-password {PASSWORD}"], cache_ttl_s=ttl,
                    grpc_servers=[f"server triton1 {triton.grpc_url}"])))
                addresses[name] = f"127.0.0.1:{ports[3 * i]}"
            samples: dict = {name: [] for name in addresses}
            for name, address in addresses.items():
                clients[name] = grpcclient.InferenceServerClient(url=address)
                deadline = time.monotonic() + 60
                while True:  # HAProxy starting; then warm the connection, the Lua state and the cache
                    try:
                        clients[name].infer("identity", [tensor], headers=headers)
                        break
                    except grpcclient.InferenceServerException:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                for _ in range(20):
                    clients[name].infer("identity", [tensor], headers=headers)
            while len(samples["alone"]) < args.infers:
                for name, client in clients.items():
                    for _ in range(min(args.block, args.infers - len(samples[name]))):
                        start = time.perf_counter()
                        client.infer("identity", [tensor], headers=headers)
                        samples[name].append((time.perf_counter() - start) * 1000)
        finally:
            for client in clients.values():
                client.close()
            for proc in procs:
                tarnstack.stop_pid(proc.pid)
            triton.stop()
    print(f"grpc: {args.infers} sequential ModelInfer on identity per configuration as {USER}, blocks of "
          f"{args.block}, load average {os.getloadavg()[0]:.1f}")
    stats = {name: {p: percentile(values, p) for p in (50, 99)} for name, values in samples.items()}
    for name, values in samples.items():
        print(f"  {name:<9} p50 {stats[name][50]:6.3f} ms  p99 {stats[name][99]:6.3f} ms  "
              f"mean {statistics.mean(values):6.3f} ms")
    missed = 0
    for name in ("pep-hit", "pep-miss"):
        for p in (50, 99):
            added = stats[name][p] - stats["alone"][p]
            bound = TARGETS.get((name, p))
            verdict = "" if bound is None else (f"target <= +{bound} ms: met" if added <= bound else
                                                f"target <= +{bound} ms: MISSED by {added - bound:.3f} ms")
            missed += bool(bound is not None and added > bound)
            print(f"  {name:<9} p{p}: {stats[name][p] / stats['alone'][p]:5.2f}x alone, "
                  f"{added * 1000:+7.0f} us  {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
