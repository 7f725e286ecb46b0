"""NVML telemetry of this machine's assigned GPU(s), read through the node-agent's own code
(gpu_allocation + nvml.GpuReader, the path a Triton container takes), at idle and under a
small CUDA load, in the same run.

The GPUs are chosen from this process's environment as the agent chooses Triton's
(CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES, else every GPU it may open), and the load runs
with the environment Triton would get: a load that shows on the chosen GPUs also shows that
the CUDA_VISIBLE_DEVICES the agent writes names them. The load is whatever the machine has:
matrix products with torch, else cupy, else tritonserver ($TRITONSERVER or on PATH) with an
empty repository (its CUDA context and memory pools: memory, little utilization), else none,
and the readings are at idle, which is said. The figure: the busiest GPU's utilization and the
memory used under load against idle.

Exit status: 0 with readings; 77 with "no GPU here: ..." where NVML shows no GPU to read
(``make bench`` skips it then); 1 when the environment names GPUs that are not here; 2 when
the load did not start or ended early.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

from tarn_shared.errors import ConfigError
from tarn_node_agent.gpu_allocation import triton_environment
from tarn_node_agent.nvml import GpuReader

MATMUL = """
import sys, time
import {module} as lib
{setup}
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for i, x in enumerate(xs):
        {on_device}y = x @ x
    {sync}
"""
LOADS = {
    "torch": dict(setup="xs = [lib.randn(4096, 4096, device=f'cuda:{i}') for i in range(lib.cuda.device_count())]",
                  on_device="", sync="lib.cuda.synchronize()"),
    "cupy": dict(setup="xs = []\nfor i in range(lib.cuda.runtime.getDeviceCount()):\n"
                       "    with lib.cuda.Device(i):\n        xs.append(lib.random.rand(4096, 4096, dtype=lib.float32))",
                 on_device="lib.cuda.Device(i).use(); ", sync="lib.cuda.runtime.deviceSynchronize()"),
}
NO_GPU = 77  # automake's "skipped"
Rows = Dict[str, Tuple[Optional[float], Optional[int], Optional[int]]]  # device -> (util %, used, total)


def snapshot(reader: GpuReader, problems: set) -> Rows:
    reading = reader.read()
    rows: Rows = {str(g.index): (g.utilization_pct, g.memory_used_bytes, g.memory_total_bytes)
                  for g in reading.gpus or ()}
    rows.update({f"{m.gpu_index}:{m.mig_index}": (None, m.memory_used_bytes, m.memory_total_bytes)
                 for m in reading.mig_devices})
    problems.update(f"{u.index}{'' if u.mig_index is None else f':{u.mig_index}'} unreadable: {u.error}"
                    for u in reading.unreadable)
    if reading.error:
        problems.add(reading.error)
    return rows


def _higher(a, b):
    return b if a is None else a if b is None else max(a, b)


def peak(samples: List[Rows]) -> Rows:
    out: Rows = {}
    for rows in samples:
        for device, (util, used, total) in rows.items():
            before = out.get(device, (None, None, None))
            out[device] = (_higher(util, before[0]), _higher(used, before[1]), total)
    return out


def sample(reader: GpuReader, seconds: float, problems: set, alive=lambda: True) -> List[Rows]:
    samples, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        samples.append(snapshot(reader, problems))
        time.sleep(0.5)
    return samples


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_load(env: Dict[str, str], seconds: float) -> Tuple[str, Optional[subprocess.Popen]]:
    for module, parts in LOADS.items():
        if importlib.util.find_spec(module) is not None:
            process = subprocess.Popen([sys.executable, "-c", MATMUL.format(module=module, **parts), str(seconds)],
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if process.stdout.readline().strip() != "ready":  # tensors allocated on every device
                return f"{module} matrix products", process
            return f"{module}: 4096x4096 float32 matrix products on every visible device", process
    triton = os.environ.get("TRITONSERVER") or shutil.which("tritonserver")
    if triton:
        args = [triton, f"--model-repository={tempfile.mkdtemp(prefix='bench-gpu-')}", "--model-control-mode=explicit",
                "--http-address=127.0.0.1", f"--http-port={_free_port()}", "--allow-grpc=false",
                "--allow-metrics=false"]
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(5.0)  # CUDA start-up: the context and memory pools are the load
        return f"tritonserver ({triton}), empty repository: CUDA context and memory pools", process
    return "none", None


def table(idle: Rows, loaded: Optional[Rows], names: Dict[str, str]) -> str:
    def mib(b):
        return "-" if b is None else f"{b / (1 << 20):.0f}"

    def pct(u):
        return "n/a" if u is None else f"{u:.0f}"  # MIG devices: NVML has no utilization

    lines = [f"{'device':8} {'name':24} {'util% idle':>10} {'load':>6} {'MiB used idle':>14} {'load':>8} {'of MiB':>8}"]
    for device in sorted(idle, key=lambda s: [int(p) for p in s.split(":")]):
        util, used, total = idle[device]
        l_util, l_used, _ = (loaded or {}).get(device, (None, None, None))
        lines.append(f"{device:8} {names.get(device, '?')[:24]:24} {pct(util):>10} "
                     f"{pct(l_util) if loaded else '-':>6} {mib(used):>14} {mib(l_used) if loaded else '-':>8} "
                     f"{mib(total):>8}")
    return "\n".join(lines)


def figure(idle: Rows, loaded: Rows) -> str:
    def busiest(rows):
        values = [u for u, _, _ in rows.values() if u is not None]
        return f"{max(values):.0f}%" if values else "n/a (MIG only)"

    used_idle = sum(b or 0 for _, b, _ in idle.values())
    used_load = sum(b or 0 for _, b, _ in loaded.values())
    return (f"figure: busiest GPU {busiest(loaded)} under load vs {busiest(idle)} idle; memory used "
            f"{used_load / max(used_idle, 1):.2f}x idle ({used_load >> 20} vs {used_idle >> 20} MiB)")


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        return process.communicate(timeout=30)[1] or ""
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[1] or ""


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="how long the readings under load last")
    args = parser.parse_args(argv)
    reader = GpuReader()
    inventory, reason = reader.inventory()
    if not inventory:
        print(f"no GPU here: {reason or 'NVML shows no GPU'}", file=sys.stderr)
        return NO_GPU
    try:
        selection = reader.select(os.environ)
    except ConfigError as exc:
        print(f"bench/gpu: {exc}", file=sys.stderr)
        return 1
    if not selection.targets:
        print(f"no GPU here: none is this process's ({selection.describe()})", file=sys.stderr)
        return NO_GPU
    names = {t.label: (t.name or "?") + (" (MIG)" if t.is_mig else "") for t in selection.targets}
    env = triton_environment(selection, dict(os.environ))
    print(f"chosen: {selection.describe()}")
    print(f"Triton's CUDA_VISIBLE_DEVICES: {env.get('CUDA_VISIBLE_DEVICES', '(unchanged)')}")
    problems: set = set()
    idle = peak(sample(reader, 1.5, problems))
    load, process = start_load(env, args.seconds + 30)
    print(f"load: {load}")
    loaded = None
    if process is not None:
        loaded_samples = sample(reader, args.seconds, problems, alive=lambda: process.poll() is None)
        running = process.poll() is None
        err = stop(process)
        if not running or not loaded_samples:
            print(table(idle, None, names))
            print(f"bench/gpu: the load ended early (exit {process.returncode}): {err.strip()[-600:]}", file=sys.stderr)
            return 2
        loaded = peak(loaded_samples)
    print(table(idle, loaded, names))
    for problem in sorted(problems):
        print(f"problem: {problem}")
    print(figure(idle, loaded) if loaded else "note: no torch, cupy or tritonserver here: readings at idle only")
    reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
