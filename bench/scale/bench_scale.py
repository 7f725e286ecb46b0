"""Scale: N simulated node-agents, each publishing a TelemetrySample on the deployment's
telemetry stream every second (tarn_node_agent's default is every 2 s) and an
InstanceHeartbeat every 5 s (its period), while the fleet churns (an instance drains, stops
and is replaced: instance.draining, instance.stopped, instance.ready on the lifecycle stream;
--churn-per-s of the fleet each second), at each of --sizes (default 100, 1,000, 10,000),
then once more at the largest size with the absolute change rate of 1,000 agents (the cost
per change: gateway-sync's CPU there <= 2x its CPU at 1,000). The telemetry is published by
shards of the simulator (telemetry_shard.py), one process per --agents-per-shard agents; the
lifecycle churn by this process. Against:

- a real ``python -m tarn_gateway_sync`` process (lifecycle -> HAProxy Runtime API + ZooKeeper);
- the AM's consumers in a process of their own (am_consumers.py: tarn_am.bus.RedisBus feeding
  tarn_am.view.FleetView, plus the control loop's once-a-second read). tarn-am itself needs
  skein's ApplicationClient, so it cannot run outside YARN.

Measured per phase, each second:
CPU of each process from /proc/<pid>/stat (utime+stime), and stream lag from XINFO GROUPS
(``lag``: entries not yet delivered to the group, plus ``pending``: delivered, not acked).
Baseline figures in the same run: the raw XADD rate one simulator process sustains alone (no
consumer), and the same services at the smaller sizes. gateway-sync runs its periodic full
reconcile every --reconcile-interval-s (default 10 s), so each phase's CPU includes them.

The simulated instances have no HTTP server behind them (1,000 of them would need 1,000
listeners): HAProxy's health checks mark them down (--no-haproxy-checks adds them without);
what is measured is gateway-sync keeping HAProxy's server list and ZooKeeper equal to the
fleet. "gateways == fleet" is timed from the last change until the newest changes show in
both (probed every 20 ms), then one whole comparison.

The largest fleet is measured a third time with gateway-sync stopped ("AM alone"): the AM's
target is judged there, since in production it runs in a container of its own; beside
everything else here its consumers get only their share of two saturated cores.

What limits 10,000 here (2 cores shared with other engineers' tests): HAProxy's own Runtime
API. One `add server` into a backend of 9,000 servers took about 50 ms and one `del server`
about 20 ms at load average ~13 (joined on one request; they isolate HAProxy's threads), and
`show servers state` of the backend 5 s; 1% churn of 10,000 asks for 100 of each per second.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import httpx
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from tarn_shared import events as ev
from tarn_shared.defaults import HEARTBEAT_INTERVAL_S
from tarn_shared.deployments import put_record
from tarn_shared.streams import StreamPublisher, connect

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))
from tarnstack import Stack  # noqa: E402  the local stack's own control, to restart HAProxy between phases
TICKS_PER_S = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")
BACKEND = "triton_backend"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def haproxy_servers(sock: str, backend: str) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock)
        s.sendall(f"show servers state {backend}\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = [l for l in data.decode().splitlines()[2:] if l.strip() and not l.startswith("#")]
    return sum(1 for l in lines if l.split()[4] != "0.0.0.0")


@dataclass
class Instance:
    port: int
    seq: int = 0

    @property
    def instance_id(self) -> str:
        return f"container_e01_1700000000000_0001_01_{self.port:06d}"


@dataclass
class PhaseResult:
    agents: int
    seconds: float
    churn_per_s: float = 0.0  # fraction of the fleet replaced each second
    shards: int = 1
    offered_per_s: float = 0.0  # telemetry entries the schedule asks for
    published_per_s: float = 0.0
    late_ticks: int = 0
    lifecycle_events: int = 0
    cpu: Dict[str, float] = field(default_factory=dict)  # % of one core
    am_handled_per_s: float = 0.0
    am_lag_max: int = 0
    am_lag_end: int = 0
    gs_lag_max: int = 0
    gs_lag_end: int = 0
    am_lifecycle_lag_end: int = 0
    register_s: Optional[float] = None
    converged_s: Optional[float] = None  # after the phase: HAProxy and ZooKeeper == live
    shown_s: Optional[float] = None  # ... of which until the newest changes showed
    gs_phases: Dict[str, float] = field(default_factory=dict)  # gateway-sync's own timings, over the phase
    am_alone: bool = False  # gateway-sync stopped: the AM's consumers without the gateways' work beside them


class Services:
    def __init__(self, args, deployment: str, app_id: str, zk_path: str) -> None:
        self.replica = f"bench-{uuid.uuid4().hex[:6]}"
        self.port = _free_port()
        env = dict(os.environ, TARN_GATEWAY_SYNC_DEPLOYMENTS=deployment, TARN_GATEWAY_SYNC_REDIS_URL=args.redis_url,
                   TARN_GATEWAY_SYNC_ZK_HOSTS=args.zk_hosts, TARN_GATEWAY_SYNC_HAPROXY_SOCKETS=args.haproxy_socket,
                   TARN_GATEWAY_SYNC_REPLICA_ID=self.replica, TARN_GATEWAY_SYNC_PORT=str(self.port),
                   TARN_GATEWAY_SYNC_ELECTION_PATH=f"/tarn-bench-election-{self.replica}/leader",
                   TARN_GATEWAY_SYNC_ALLOWED_ZK_PATHS=zk_path,  # the bench's own path, not the default namespace
                   TARN_GATEWAY_SYNC_RECONCILE_INTERVAL_S=str(args.reconcile_interval_s),
                   TARN_GATEWAY_SYNC_HAPROXY_CHECK=str(args.haproxy_checks).lower(),
                   TARN_GATEWAY_SYNC_LOG_JSON="false", TARN_GATEWAY_SYNC_LOG_LEVEL="WARNING")
        run = Path(args.run_dir)
        self.logs = [open(run / f"gateway-sync-{deployment}.log", "ab"), open(run / f"am-{deployment}.log", "ab")]
        self.gateway_sync = subprocess.Popen([sys.executable, "-m", "tarn_gateway_sync"], env=env, cwd=ROOT,
                                             stdout=self.logs[0], stderr=subprocess.STDOUT)
        self.am = subprocess.Popen([sys.executable, str(HERE / "am_consumers.py"), args.redis_url, deployment, app_id],
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=self.logs[1])
        assert self.am.stdout is not None and self.am.stdout.readline().strip() == b"ready", "AM consumers did not start"

    def timings(self) -> Dict[str, float]:
        """gateway-sync's /metrics: seconds and count of its apply and reconcile phases, and the
        propagation histogram's cumulative buckets (what explains a slow convergence)."""
        if self.gateway_sync is None:
            return {}
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        out: Dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("tarn_gateway_sync_phase_seconds_") and not sample.name.endswith("_bucket"):
                    key = f"{sample.labels['phase']}_{sample.name.rsplit('_', 1)[1]}"
                elif sample.name == "tarn_gateway_sync_propagation_seconds_bucket":
                    key = f"propagation_le_{sample.labels['le']}"
                else:
                    continue
                out[key] = out.get(key, 0.0) + sample.value
        return out

    def pids(self) -> Dict[str, int]:
        return {"am-consumers": self.am.pid} | ({"gateway-sync": self.gateway_sync.pid} if self.gateway_sync else {})

    def stop_gateway_sync(self) -> None:
        if self.gateway_sync is not None:
            _end(self.gateway_sync)
            self.gateway_sync = None

    def stop(self) -> None:
        self.stop_gateway_sync()
        _end(self.am)
        for log in self.logs:
            log.close()


def _end(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def raw_xadd_rate(redis_url: str, seconds: float) -> float:
    """The baseline: telemetry entries/s this simulator XADDs with no consumer at all."""
    client = connect(redis_url)
    publisher = StreamPublisher(client)
    stream = ev.telemetry_stream(f"raw{uuid.uuid4().hex[:8]}")
    sent, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = [_sample("raw", Instance(1)) for _ in range(200)]
        await publisher.publish_many(stream, batch, maxlen=ev.TELEMETRY_MAXLEN)
        sent += len(batch)
    rate = sent / (time.perf_counter() - started)
    await client.delete(stream)
    await client.aclose()
    return rate


def _sample(deployment: str, instance: Instance) -> ev.TelemetrySample:
    return ev.TelemetrySample(
        deployment=deployment, app_id="application_1700000000000_0001", instance_id=instance.instance_id,
        interval_s=1.0, load=random.random(),
        models=[ev.ModelSample(name="identity", version="1", request_rate_per_s=random.random() * 50,
                               queue_time_per_request_us=random.random() * 1000, pending_requests=random.random())],
        gpu_error="NVMLError_LibraryNotFound: NVML Shared Library Not Found")


async def group_lag(client, stream: str, group: str) -> Optional[Dict[str, int]]:
    try:
        groups = await client.xinfo_groups(stream)
    except Exception:
        return None
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == group:
            lag = g.get("lag")
            return {"lag": int(lag) if lag is not None else 0, "pending": int(g["pending"]),
                    "read": int(g.get("entries-read") or 0)}
    return None


class Shards:
    """The telemetry publishers: slot k (one simulated agent) belongs to shard k % count."""

    def __init__(self, args, deployment: str, app_id: str, count: int) -> None:
        self.procs = [subprocess.Popen([sys.executable, str(HERE / "telemetry_shard.py"), args.redis_url, deployment,
                                        app_id], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                      for _ in range(count)]

    def send(self, slot: int, line: str) -> None:
        stdin = self.procs[slot % len(self.procs)].stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")

    def everyone(self, line: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line.encode() + b"\n")
            proc.stdin.flush()

    def flush(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.flush()

    def stop(self) -> Dict[str, int]:
        self.everyone("stop")
        totals = {"published": 0, "late_ticks": 0}
        for proc in self.procs:
            out, _ = proc.communicate(timeout=30)
            for key, value in json.loads(out.decode().strip().splitlines()[-1]).items():
                totals[key] += value
        return totals


async def run_phase(args, agents: int, seconds: float, churns: List[float], am_alone: bool) -> List[PhaseResult]:
    """One fleet of ``agents`` registered once, then measured at each churn rate in turn
    (registering 10,000 servers takes minutes here: HAProxy's add server is the cost); with
    ``am_alone``, once more at the first rate with gateway-sync stopped."""
    deployment = f"scale{agents}x{uuid.uuid4().hex[:6]}"
    app_id = "application_1700000000000_0001"
    zk_path = f"/tarn-bench-{deployment}/instances"
    client = connect(args.redis_url)
    publisher = StreamPublisher(client)
    lifecycle, telemetry = ev.lifecycle_stream(deployment), ev.telemetry_stream(deployment)
    await put_record(client, ev.DeploymentRecord(deployment=deployment, app_id=app_id, zk_ensemble=args.zk_hosts,
                                                 zk_path=zk_path, haproxy_backend=BACKEND, max_instances=agents))
    services = Services(args, deployment, app_id, zk_path)
    shards = Shards(args, deployment, app_id, max(1, math.ceil(agents / args.agents_per_shard)))
    results: List[PhaseResult] = []
    zk = KazooClient(hosts=args.zk_hosts)
    zk.start(timeout=15)
    result = PhaseResult(agents=agents, seconds=seconds, churn_per_s=churns[0], shards=len(shards.procs))
    rng = random.Random(agents)
    next_port = 20000
    live: Dict[int, Instance] = {}
    slot_of: Dict[int, int] = {}  # port -> slot

    def new_instance() -> Instance:
        nonlocal next_port
        next_port += 1
        return Instance(next_port)

    def lifecycle_event(kind, instance: Instance, **extra) -> ev.Event:
        instance.seq += 1
        return kind(deployment=deployment, app_id=app_id, instance_id=instance.instance_id, seq=instance.seq,
                    endpoints=ev.Endpoints(host="127.0.0.1", http_port=instance.port), models=["identity"], **extra)

    def routed() -> tuple:
        children = zk.get_children(zk_path) if zk.exists(zk_path) else []
        return len(children), haproxy_servers(args.haproxy_socket, BACKEND)

    try:
        await asyncio.sleep(2.0)  # gateway-sync elected and serving the record
        first = [new_instance() for _ in range(agents)]
        started = time.monotonic()
        for i in range(0, agents, 200):
            await publisher.publish_many(lifecycle, [lifecycle_event(ev.InstanceReady, x) for x in first[i:i + 200]])
        live = {x.port: x for x in first}
        for slot, instance in enumerate(first):
            slot_of[instance.port] = slot
            shards.send(slot, f"slot {slot} {instance.port} {instance.seq}")
        shards.flush()
        while routed() != (agents, agents):
            if time.monotonic() - started > args.register_timeout_s:
                break
            await asyncio.sleep(0.2)
        else:
            result.register_s = time.monotonic() - started
        result.lifecycle_events += agents
        await asyncio.sleep(1.0)  # the registration's tail out of the window

        for churn_per_s, alone in [(c, False) for c in churns] + ([(churns[0], True)] if am_alone else []):
            if results:  # the next rate on the same fleet: fresh shards, handed the live slots
                result = PhaseResult(agents=agents, seconds=seconds, churn_per_s=churn_per_s, shards=len(shards.procs),
                                     am_alone=alone)
                shards = Shards(args, deployment, app_id, len(shards.procs))
                for port, instance in live.items():
                    shards.send(slot_of[port], f"slot {slot_of[port]} {port} {instance.seq}")
                shards.flush()
            if alone:
                services.stop_gateway_sync()
                # It starts level: the backlog of the phases before (when it was starved) is skipped.
                added = (await client.xinfo_stream(telemetry))["entries-added"]
                await client.xgroup_setid(telemetry, "tarn-am", "$", entries_read=added)
            pids = services.pids() | {"redis": _pid_of(args.run_dir, "redis"),
                                      "haproxy": _pid_of(args.run_dir, "haproxy"), "simulator": os.getpid()}
            shard_pids = [p.pid for p in shards.procs]
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            cpu0["simulator"] += sum(cpu_seconds(p) for p in shard_pids)
            read0 = (await group_lag(client, telemetry, "tarn-am") or {"read": 0})["read"]
            timings0 = services.timings()
            shards.everyone("go")
            t0 = time.monotonic()
            churn_per_tick = churn_per_s * agents / TICKS_PER_S
            churn_debt = 0.0
            leaving: List[Instance] = []
            tick = 0
            while time.monotonic() - t0 < seconds:
                tick_at = t0 + tick / TICKS_PER_S
                delay = tick_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.1:
                    result.late_ticks += 1
                # churn: last tick's draining instances stop and are replaced (in their slot); new ones start draining
                changes: List[ev.Event] = []
                for instance in leaving:
                    changes.append(lifecycle_event(ev.InstanceStopped, instance, exit_code=0, reason="drained"))
                    replacement = new_instance()
                    live[replacement.port] = replacement
                    changes.append(lifecycle_event(ev.InstanceReady, replacement))
                    slot = slot_of[replacement.port] = slot_of.pop(instance.port)
                    shards.send(slot, f"slot {slot} {replacement.port} {replacement.seq}")
                leaving = []
                churn_debt += churn_per_tick
                while churn_debt >= 1 and live:
                    churn_debt -= 1
                    instance = live.pop(rng.choice(list(live)))
                    changes.append(lifecycle_event(ev.InstanceDraining, instance, timeout_s=30))
                    leaving.append(instance)
                    shards.send(slot_of[instance.port], f"idle {slot_of[instance.port]}")
                shards.flush()
                if changes:
                    await publisher.publish_many(lifecycle, changes)
                    result.lifecycle_events += len(changes)
                    last_changes = {e.endpoints.http_port: isinstance(e, ev.InstanceReady) for e in changes}
                if tick % TICKS_PER_S == 0:
                    am = await group_lag(client, telemetry, "tarn-am")
                    gs = None if alone else await group_lag(client, lifecycle, f"gateway-sync.{services.replica}")
                    if am:
                        result.am_lag_max = max(result.am_lag_max, am["lag"] + am["pending"])
                    if gs:
                        result.gs_lag_max = max(result.gs_lag_max, gs["lag"] + gs["pending"])
                tick += 1
            elapsed = time.monotonic() - t0
            cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            cpu1["simulator"] += sum(cpu_seconds(p) for p in shard_pids)
            published = shards.stop()
            am = await group_lag(client, telemetry, "tarn-am") or {"lag": -1, "pending": -1, "read": read0}
            gs = {"lag": 0, "pending": 0} if alone else \
                await group_lag(client, lifecycle, f"gateway-sync.{services.replica}") or {"lag": -1, "pending": -1}
            aml = await group_lag(client, lifecycle, "tarn-am") or {"lag": -1, "pending": -1}
            result.cpu = {name: 100.0 * (cpu1[name] - cpu0[name]) / elapsed for name in pids}
            result.offered_per_s = (1.0 + 1.0 / HEARTBEAT_INTERVAL_S) * agents
            result.published_per_s = published["published"] / elapsed
            result.late_ticks += published["late_ticks"]
            result.am_handled_per_s = (am["read"] - read0) / elapsed
            result.am_lag_end = am["lag"] + am["pending"]
            result.gs_lag_end = gs["lag"] + gs["pending"]
            result.am_lifecycle_lag_end = aml["lag"] + aml["pending"]
            # the draining instances of the last tick count as gone for the gateways
            for instance in leaving:
                await publisher.publish(lifecycle, lifecycle_event(ev.InstanceStopped, instance, exit_code=0))
                last_changes[instance.port] = False
            if not alone:
                result.shown_s, result.converged_s = await converged(args, zk, zk_path, last_changes,
                                                                     lambda: routed() == (len(live),) * 2)
                result.gs_phases = phase_timings(timings0, services.timings())
            results.append(result)
    finally:
        for proc in shards.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        services.stop()
        # HAProxy's backend empty for the next phase: a restart drops every runtime server at
        # once (deleting 10,000 one by one through the Runtime API takes minutes here)
        Stack(Path(args.run_dir)).restart("haproxy")
        if zk.exists(f"/tarn-bench-{deployment}"):
            zk.delete(f"/tarn-bench-{deployment}", recursive=True)
        zk.stop()
        zk.close()
        for stream in (lifecycle, telemetry, ev.acks_stream(deployment)):
            await client.delete(stream)
        await client.aclose()
    return results


async def converged(args, zk, zk_path: str, last_changes: Dict[int, bool],
                    equal) -> Tuple[Optional[float], Optional[float]]:
    """Seconds from the last change until both gateways show the newest changes (cheap probes
    of those servers and znodes, every 20 ms: a whole dump of 10,000 servers takes seconds
    here), and until they then hold exactly the fleet (one whole check); None past 30 s."""
    started = time.monotonic()

    def shown(port: int) -> Tuple[bool, bool]:
        name = f"tarn-127.0.0.1:{port}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(args.haproxy_socket)
            s.sendall(f"get weight {BACKEND}/{name}\n".encode())
            answer = s.recv(4096)
        return not answer.startswith(b"No such"), zk.exists(f"{zk_path}/127.0.0.1:{port}") is not None

    while any(shown(port) != (want, want) for port, want in last_changes.items()):
        if time.monotonic() - started > 30:
            return None, None
        await asyncio.sleep(0.02)
    shown_s = at = time.monotonic() - started
    while not equal():  # a change that failed and waits for its retry
        if time.monotonic() - started > 30:
            return shown_s, None
        await asyncio.sleep(0.1)
        at = time.monotonic() - started
    return shown_s, at


def phase_timings(before: Dict[str, float], after: Dict[str, float]) -> Dict[str, float]:
    """Over one phase: mean apply and reconcile seconds, reconciles run, and the propagation
    p99 as its histogram bucket's upper bound."""
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    out = {}
    for phase in ("apply", "reconcile"):
        count = delta.get(f"{phase}_count", 0.0)
        out[f"{phase}_count"] = count
        out[f"{phase}_mean_s"] = delta.get(f"{phase}_sum", 0.0) / count if count else 0.0
    buckets = sorted((float(k.rsplit("_", 1)[1]), v) for k, v in delta.items() if k.startswith("propagation_le_"))
    total = buckets[-1][1] if buckets else 0.0
    out["propagation_p99_le_s"] = next((le for le, n in buckets if total and n >= 0.99 * total), math.nan)
    return out


def _pid_of(run_dir: str, name: str) -> int:
    state = json.loads((Path(run_dir) / "stack.json").read_text())
    return state["processes"][name]["pid"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


AM_CPU_AT_10000 = 50.0  # % of a core (issue 18)
GS_CPU_RATIO = 2.0  # gateway-sync at 10,000 vs 1,000, same change rate


def verdicts(result: PhaseResult) -> Dict[str, bool]:
    """Keeping up: what came in during the phase was handled at the rate it came, the lag at
    the end is under one telemetry interval's worth, the process is under one core, and the
    gateways equalled the fleet within 2 s of the last change."""
    am = (result.am_handled_per_s >= 0.95 * result.published_per_s and result.am_lag_end <= result.offered_per_s
          and result.cpu["am-consumers"] < 90.0)
    gs = None if result.am_alone else (
        result.gs_lag_end <= max(50, 0.05 * result.agents) and result.cpu["gateway-sync"] < 90.0
        and result.converged_s is not None and result.converged_s <= 2.0)
    return {"am": am, "gateway-sync": gs, "simulator": result.late_ticks == 0 and
            result.published_per_s >= 0.95 * result.offered_per_s}


ROWS = [
    ("agents", "{:d}", "agents"),
    ("churn (fraction of fleet /s)", "{:.4f}", "churn_per_s"),
    ("simulator shards", "{:d}", "shards"),
    ("telemetry offered /s", "{:,.0f}", "offered_per_s"),
    ("telemetry published /s", "{:,.0f}", "published_per_s"),
    ("simulator late ticks", "{:d}", "late_ticks"),
    ("lifecycle events", "{:d}", "lifecycle_events"),
    ("AM telemetry handled /s", "{:,.0f}", "am_handled_per_s"),
    ("AM telemetry lag max (entries)", "{:d}", "am_lag_max"),
    ("AM telemetry lag at end", "{:d}", "am_lag_end"),
    ("AM lifecycle lag at end", "{:d}", "am_lifecycle_lag_end"),
    ("gateway-sync lifecycle lag max", "{:d}", "gs_lag_max"),
    ("gateway-sync lifecycle lag at end", "{:d}", "gs_lag_end"),
    ("initial registration of all (s)", "{:.2f}", "register_s"),
    ("gateways == fleet after last change (s)", "{:.2f}", "converged_s"),
    ("  of which newest changes shown (s)", "{:.2f}", "shown_s"),
]
TIMINGS = [("gateway-sync applies", "{:,.0f}", "apply_count"), ("  mean apply (s)", "{:.3f}", "apply_mean_s"),
           ("gateway-sync reconciles", "{:,.0f}", "reconcile_count"),
           ("  mean reconcile (s)", "{:.2f}", "reconcile_mean_s"),
           ("propagation p99 <= (s, bucket bound)", "{}", "propagation_p99_le_s")]


def print_report(raw: float, phases: List[PhaseResult], same_rate: PhaseResult, alone: PhaseResult,
                 at_1000: Optional[PhaseResult]) -> bool:
    """One table, a column per phase; True when every target was met."""
    print(f"\nraw XADD baseline (one simulator process alone, no consumer): {raw:,.0f} telemetry entries/s")
    print(f"HAProxy health checks on the simulated servers: {'on' if ARGS.haproxy_checks else 'off'}")
    biggest = phases[-1]
    print(f"offered at {biggest.agents} agents: {biggest.offered_per_s:,.0f} entries/s = "
          f"{biggest.offered_per_s / raw:.3f} x that rate; load average now %.2f %.2f %.2f\n" % os.getloadavg())
    columns = phases + [same_rate, alone]
    heads = [f"{p.agents:,}" for p in phases] + [f"{same_rate.agents:,}@1k rate", f"{alone.agents:,} AM alone"]
    show = lambda fmt, v: "n/a" if v is None else fmt.format(v)  # noqa: E731
    print(f"{'':42}" + "".join(f"{h:>16}" for h in heads))
    for label, fmt, attr in ROWS:
        print(f"{label:42}" + "".join(f"{show(fmt, getattr(p, attr)):>16}" for p in columns))
    for label, fmt, key in TIMINGS:
        print(f"{label:42}" + "".join(f"{show(fmt, p.gs_phases.get(key)):>16}" for p in columns))
    for name in biggest.cpu:
        print(f"{'CPU % of a core: ' + name:42}" + "".join(f"{show('{:.1f}', p.cpu.get(name)):>16}" for p in columns))
    print()
    ok = True
    for phase in columns:
        verdict = verdicts(phase)
        if phase.am_alone:
            print(f"{phase.agents:>6} agents, AM consumers alone (gateway-sync stopped): AM keeps up: "
                  f"{'met' if verdict['am'] else 'MISSED'}")
            continue
        met = phase.converged_s is not None and phase.converged_s <= 2.0
        ok = ok and met and bool(verdict["gateway-sync"])
        print(f"{phase.agents:>6} agents, churn {phase.churn_per_s:.4f}/s: gateways == fleet within 2 s of the last "
              f"change: {'met' if met else 'MISSED'} ({show('{:.2f}', phase.converged_s)} s); gateway-sync keeps up "
              f"(lag, CPU < 90%): {'met' if verdict['gateway-sync'] else 'MISSED'}; AM keeps up: "
              f"{'met' if verdict['am'] else 'MISSED'}")
        if not verdict["simulator"]:
            print("        note: the simulator fell behind its schedule (late ticks or < 95% of the offered rate); "
                  "the services saw less than the target load")
    if at_1000 is not None:
        ratio = same_rate.cpu["gateway-sync"] / max(at_1000.cpu["gateway-sync"], 0.1)
        met = ratio <= GS_CPU_RATIO
        ok = ok and met
        print(f"gateway-sync CPU at {same_rate.agents:,} / at 1,000, same change rate: {ratio:.2f}x "
              f"(target <= {GS_CPU_RATIO}x): {'met' if met else 'MISSED'}")
    if biggest.agents >= 10_000:
        # Judged alone, as the AM runs in production: in a container of its own, not on the two
        # cores that also carry gateway-sync, HAProxy, ZooKeeper and 10,000 simulated agents.
        for phase, where in ((biggest, "beside everything else"), (alone, "alone, the target")):
            met = phase.cpu["am-consumers"] <= AM_CPU_AT_10000 and verdicts(phase)["am"]
            print(f"AM consumers at {phase.agents:,} {where}: {phase.cpu['am-consumers']:.1f}% of a core, "
                  f"{phase.am_handled_per_s:,.0f} of {phase.published_per_s:,.0f} entries/s "
                  f"(target <= {AM_CPU_AT_10000:.0f}% while keeping up): {'met' if met else 'MISSED'}")
        ok = ok and met
    return ok


async def main(args) -> bool:
    raw = await raw_xadd_rate(args.redis_url, 3.0)
    sizes = sorted(int(x) for x in args.sizes.split(","))
    phases: List[PhaseResult] = []
    for n in sizes:
        # the largest fleet is measured twice: also at the absolute change rate of 1,000 agents (cost per change)
        churns = [args.churn_per_s] + ([args.churn_per_s * 1000 / n] if n == sizes[-1] else [])
        for result in await run_phase(args, n, args.seconds, churns, am_alone=n == sizes[-1]):
            phases.append(result)
            print(json.dumps(asdict(result)), flush=True)  # each phase as it ends: a long run leaves its part
    alone, same_rate = phases.pop(), phases.pop()
    return print_report(raw, phases, same_rate, alone, next((p for p in phases if p.agents == 1000), None))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--zk-hosts", required=True)
    parser.add_argument("--haproxy-socket", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--sizes", default="100,1000,10000", help="fleet sizes, comma separated")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--churn-per-s", type=float, default=0.01, help="fraction of the fleet replaced per second")
    parser.add_argument("--agents-per-shard", type=int, default=2500, help="simulated agents per publishing process")
    parser.add_argument("--reconcile-interval-s", type=float, default=10.0)
    parser.add_argument("--register-timeout-s", type=float, default=300.0)
    parser.add_argument("--no-haproxy-checks", dest="haproxy_checks", action="store_false",
                        help="add servers without health checks (the simulated agents have no listener)")
    ARGS = parser.parse_args()
    sys.exit(0 if asyncio.run(main(ARGS)) else 1)
