"""Helpers for the churn tests: simulated node-agents, each backed by a real HTTP server on
loopback (HAProxy's health checks and traffic reach it), publishing the lifecycle events the
real agent publishes, plus the AM's periodic membership snapshot and deployment record.

The truth is what the simulation keeps: the set of instances that are up and announced
ready. The checks compare HAProxy (Runtime API and real traffic through its frontend) and
ZooKeeper against it, and read the consumer groups to show no lifecycle event was lost.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import httpx
import pytest

from tarn_shared import events as ev
from tarn_shared.defaults import ZK_PATH
from tarn_shared.deployments import put_record
from tarn_shared.errors import UnavailableError
from tarn_shared.streams import REDIS_DOWN, StreamPublisher, connect
from tests.gateway_sync.support import Gateways
from tests.support.polling import until
from tests.support.ports import free_port, free_ports
from tests.support.processes import terminate
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
MODEL = "identity"
APP_ID = "application_1700000000000_0001"
SNAPSHOT_INTERVAL_S = 2.0  # the AM's is 5 s; shorter keeps the tests short
UNROUTED_WAIT_S = 10.0  # the agent's bounded wait for gateway-sync's instance.unrouted


@pytest.fixture
async def world(stack, redis_url, deployment, zk_hosts, haproxy_backend):
    """A simulated fleet on the test's own deployment and dynamic HAProxy backend, the
    gateways to check, and the frontend URL that reaches that backend."""
    backend = haproxy_backend["dyn"]
    fleet = SimFleet(redis_url, deployment, zk_hosts, backend["name"])
    gateways = Gateways(haproxy_backend["socket"], backend["name"], zk_hosts)
    await fleet.start()
    yield fleet, gateways, f"http://127.0.0.1:{backend['port']}"
    await fleet.close()
    gateways.close()


def addr(port: int) -> str:
    return f"127.0.0.1:{port}"


# ------------------------------------------------------------------ the instances' HTTP side

class InstanceServer:
    """A minimal real HTTP/1.1 server standing in for one tritonserver: every path answers
    200 with the port (so traffic through HAProxy says who served it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: Set[asyncio.StreamWriter] = set()
        self.served = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self) -> None:
        """Like a killed process: the port stops listening and open connections are reset."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = (lines[0].split(" ") + ["", ""])[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                self.served += 1
                body = json.dumps({"port": self.port, "path": path, "ready": True}).encode()
                close = headers.get("connection", "").lower() == "close"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
                             f"Content-Length: {len(body)}\r\n".encode() +
                             (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


# ------------------------------------------------------------------ the node-agents and the AM

@dataclass
class SimInstance:
    port: int
    server: InstanceServer
    seq: int = 0
    state: ev.InstanceState = ev.InstanceState.STARTING

    @property
    def instance_id(self) -> str:
        return f"container_e01_{self.port}"

    def endpoints(self) -> ev.Endpoints:
        return ev.Endpoints(host="127.0.0.1", http_port=self.port)


@dataclass
class ChurnStats:
    ready: int = 0
    drained: int = 0
    crashed: int = 0
    publish_retries: int = 0
    unrouted_timeouts: int = 0
    published_ids: List[str] = field(default_factory=list, repr=False)


class SimFleet:
    """Simulated node-agents churning, and the AM's snapshot and record beside them."""

    def __init__(self, redis_url: str, deployment: str, zk_hosts: str, backend: str, seed: int = 7,
                 max_live: int = 8) -> None:
        self.redis_url = redis_url
        self.client = connect(redis_url, socket_timeout_s=2.0)
        self.publisher = StreamPublisher(self.client)
        self.deployment = deployment
        self.stream = ev.lifecycle_stream(deployment)
        self.record = ev.DeploymentRecord(deployment=deployment, app_id=APP_ID, zk_ensemble=zk_hosts,
                                          zk_path=ZK_PATH, haproxy_backend=backend)
        self.instances: Dict[int, SimInstance] = {}
        self.dead: Set[int] = set()  # ports whose server is closed
        self.stats = ChurnStats()
        self.rng = random.Random(seed)
        self.max_live = max_live
        self._lock = asyncio.Lock()  # one publisher at a time: a snapshot never races an event
        self._unrouted: Dict[str, int] = {}
        self._tasks: List[asyncio.Task] = []
        self._drains: Set[asyncio.Task] = set()
        self._churning: Optional[asyncio.Task] = None
        self._snapshot_seq = 0
        self._closing = False  # redis-py may turn a cancellation into a connection error: loops check this too

    # -- truth ----------------------------------------------------------------------------
    def truth(self) -> Set[str]:
        """Addresses that must be routed: up and announced ready."""
        return {addr(p) for p, i in self.instances.items() if i.state is ev.InstanceState.READY}

    def quiet(self) -> asyncio.Lock:
        """Held, no lifecycle event is being published (for cutting Redis at a clean point)."""
        return self._lock

    def live_ports(self) -> Set[int]:
        return {p for p, i in self.instances.items() if i.state is ev.InstanceState.READY}

    # -- life -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self._publish_record()
        self._tasks = [asyncio.create_task(self._am_loop(), name="am-snapshots"),
                       asyncio.create_task(self._watch_unrouted(), name="unrouted-watch")]

    async def close(self) -> None:
        await self.stop_churn()
        self._closing = True
        tasks = self._tasks + list(self._drains)
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5.0)
            assert not stuck, f"simulation tasks ignored cancellation: {[t.get_name() for t in stuck]}"
        for instance in self.instances.values():
            await asyncio.wait_for(instance.server.stop(), 5.0)
        await asyncio.wait_for(self.client.aclose(), 5.0)

    # -- publishing, retried like the agent's until Redis takes it ------------------------
    async def _publish(self, event: ev.Event, stream: Optional[str] = None) -> str:
        while not self._closing:
            try:
                entry_id = await self.publisher.publish(stream or self.stream, event, retry_for_s=1.0)
                if stream is None:
                    self.stats.published_ids.append(entry_id)
                return entry_id
            except (UnavailableError, *REDIS_DOWN):
                self.stats.publish_retries += 1
                await asyncio.sleep(0.1)
        raise asyncio.CancelledError()

    async def _publish_record(self) -> None:
        while not self._closing:
            try:
                await put_record(self.client, self.record)
                return
            except REDIS_DOWN:
                await asyncio.sleep(0.1)

    async def _emit(self, instance: SimInstance, kind, **extra) -> str:
        instance.seq += 1
        event = kind(deployment=self.deployment, app_id=APP_ID, instance_id=instance.instance_id,
                     seq=instance.seq, endpoints=instance.endpoints(), models=[MODEL], **extra)
        return await self._publish(event)

    # -- what an agent does -----------------------------------------------------------------
    async def start_instance(self) -> int:
        """Container up, Triton ready (the server answers), then instance.ready."""
        port = free_port()
        server = InstanceServer(port)
        await server.start()
        instance = SimInstance(port, server)
        async with self._lock:
            self.instances[port] = instance
            instance.state = ev.InstanceState.READY
            await self._emit(instance, ev.InstanceReady)
        self.stats.ready += 1
        return port

    async def drain(self, port: int) -> None:
        """The drain handshake: announce draining, wait (bounded) for gateway-sync's
        instance.unrouted, stop serving, announce stopped. Runs in the background."""
        instance = self.instances[port]
        async with self._lock:
            instance.state = ev.InstanceState.DRAINING
            await self._emit(instance, ev.InstanceDraining, timeout_s=UNROUTED_WAIT_S)
        drain_seq = instance.seq

        async def finish() -> None:
            deadline = time.monotonic() + UNROUTED_WAIT_S
            while self._unrouted.get(instance.instance_id, -1) < drain_seq:
                if time.monotonic() > deadline:
                    self.stats.unrouted_timeouts += 1
                    break
                await asyncio.sleep(0.05)
            await instance.server.stop()
            self.dead.add(port)
            async with self._lock:
                instance.state = ev.InstanceState.STOPPED
                await self._emit(instance, ev.InstanceStopped, exit_code=0, reason="drained")
            self.instances.pop(port, None)
            self.stats.drained += 1

        task = asyncio.create_task(finish(), name=f"drain-{port}")
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def crash(self, port: int) -> None:
        """Triton and the agent die (SIGKILL); the AM announces the instance stopped."""
        instance = self.instances[port]
        await instance.server.stop()
        self.dead.add(port)
        async with self._lock:
            instance.state = ev.InstanceState.STOPPED
            await self._emit(instance, ev.InstanceStopped, exit_code=-9, reason="container killed")
        self.instances.pop(port, None)
        self.stats.crashed += 1

    async def step(self) -> None:
        live = sorted(self.live_ports())
        roll = self.rng.random()
        if len(live) < 2 or (len(live) < self.max_live and roll < 0.5):
            await self.start_instance()
        elif roll < 0.8:
            await self.drain(self.rng.choice(live))
        else:
            await self.crash(self.rng.choice(live))

    async def churn_for(self, seconds: float, pause_s: float = 0.15) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.step()
            await asyncio.sleep(pause_s)

    def start_churn(self, pause_s: float = 0.15) -> None:
        async def forever() -> None:
            while True:
                await self.step()
                await asyncio.sleep(pause_s)
        self._churning = asyncio.create_task(forever(), name="churn")

    async def stop_churn(self) -> None:
        """Stop new churn and let drains in flight finish: afterwards the truth holds still."""
        if self._churning is not None:
            self._churning.cancel()
            await asyncio.gather(self._churning, return_exceptions=True)
            self._churning = None
        if self._drains:
            await asyncio.gather(*list(self._drains), return_exceptions=True)

    # -- the AM's share: snapshot on a timer, record refreshed (Redis may restart empty) ---
    async def snapshot(self) -> None:
        async with self._lock:
            while not self._closing:
                try:
                    last = await self.client.xrevrange(self.stream, count=1)
                    break
                except REDIS_DOWN:
                    await asyncio.sleep(0.1)
            else:
                return
            through = _text(last[0][0]) if last else None
            members = [ev.MemberState(instance_id=i.instance_id, state=i.state, seq=i.seq, endpoints=i.endpoints(),
                                      models=[MODEL])
                       for i in self.instances.values() if i.state is not ev.InstanceState.STOPPED]
            self._snapshot_seq += 1
            await self._publish(ev.MembershipSnapshot(
                deployment=self.deployment, app_id=APP_ID, snapshot_seq=self._snapshot_seq,
                lifecycle_through=through, desired_count=len(members), members=members,
                interval_s=SNAPSHOT_INTERVAL_S))

    async def _am_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)
            await self._publish_record()
            await self.snapshot()

    async def _watch_unrouted(self) -> None:
        """What the draining agent waits for; read with a client of its own."""
        reader = connect(self.redis_url, socket_timeout_s=5.0)
        last = "0-0"
        try:
            while not self._closing:
                try:
                    answer = await reader.xread({self.stream: last}, count=500, block=500)
                except REDIS_DOWN:
                    await asyncio.sleep(0.1)
                    last = "0-0"  # Redis came back empty: read its new stream from the start
                    continue
                for _, entries in answer or []:
                    for entry_id, fields in entries:
                        last = _text(entry_id)
                        try:
                            event = ev.decode(fields)
                        except ev.SchemaError:
                            continue
                        if isinstance(event, ev.InstanceUnrouted):
                            self._unrouted[event.instance_id] = max(event.seq, self._unrouted.get(event.instance_id, 0))
        finally:
            await reader.aclose()


# ------------------------------------------------------------------ checks

async def routed_exactly(gateways: Gateways, expected: Set[str]) -> bool:
    """Every HAProxy server (any state) and every znode is a live instance, and all of them are."""
    try:
        servers = {f"{s.ip}:{s.port}" for s in await gateways.haproxy_all() if s.ip != "0.0.0.0"}
        ready = set(await gateways.haproxy_ready())
    except UnavailableError:
        return False
    return servers == expected and ready == expected and set(gateways.znodes()) == expected


async def wait_converged(gateways: Gateways, fleet: SimFleet, timeout_s: float = 30.0) -> float:
    """Seconds until HAProxy and ZooKeeper match the fleet's truth."""
    started = time.monotonic()

    async def matches() -> bool:
        return await routed_exactly(gateways, fleet.truth())

    try:
        await until(matches, timeout_s, "HAProxy and ZooKeeper matching the live instances")
    except AssertionError:
        haproxy = {f"{s.ip}:{s.port}:{s.admin.value}" for s in await gateways.haproxy_all()}
        raise AssertionError(f"not converged within {timeout_s}s: truth={sorted(fleet.truth())} "
                             f"haproxy={sorted(haproxy)} znodes={sorted(gateways.znodes())}") from None
    return time.monotonic() - started


async def traffic(frontend_url: str, requests: int = 40, **client_kwargs) -> Tuple[Dict[int, int], Dict[int, int]]:
    """Send requests through HAProxy's frontend: (answering port -> count, status -> count)."""
    answered: Dict[int, int] = {}
    statuses: Dict[int, int] = {}
    async with httpx.AsyncClient(timeout=5.0, **client_kwargs) as client:
        for _ in range(requests):
            response = await client.post(f"{frontend_url}/v2/models/{MODEL}/infer", json={"inputs": []})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                port = response.json()["port"]
                answered[port] = answered.get(port, 0) + 1
    return answered, statuses


async def assert_routed_to_live_only(frontend_url: str, fleet: SimFleet, **client_kwargs) -> None:
    answered, statuses = await traffic(frontend_url, requests=max(20, 4 * len(fleet.truth())), **client_kwargs)
    assert statuses == {200: sum(statuses.values())}, f"requests through HAProxy failed: {statuses}"
    assert not set(answered) & fleet.dead, f"a dead instance answered: {set(answered) & fleet.dead}"
    assert set(answered) == fleet.live_ports(), \
        f"answering {sorted(answered)} != live {sorted(fleet.live_ports())}"


async def assert_no_event_lost(fleet: SimFleet, group: str, since_index: int = 0) -> None:
    """Every lifecycle event the agents published (since index) is in the stream; the
    group has been delivered everything and acked it; nothing went to the dead letters."""
    client = fleet.client
    ids = set()
    start = "-"
    while True:
        batch = await client.xrange(fleet.stream, min=start, max="+", count=1000)
        ids |= {_text(i) for i, _ in batch}
        if len(batch) < 1000:
            break
        start = "(" + _text(batch[-1][0])
    missing = [i for i in fleet.stats.published_ids[since_index:] if i not in ids]
    assert not missing, f"{len(missing)} published lifecycle events are not in the stream"

    async def caught_up() -> bool:
        groups = {_text(g["name"]): g for g in await client.xinfo_groups(fleet.stream)}
        info = groups.get(group)
        last = await client.xrevrange(fleet.stream, count=1)
        return bool(info) and info["pending"] == 0 and _text(info["last-delivered-id"]) == _text(last[0][0])

    await until(caught_up, 15, f"group {group} delivered and acked every lifecycle entry")
    assert await client.xlen(ev.dead_letter_stream(fleet.stream)) == 0, "lifecycle entries were dead-lettered"


def report(what: str, seconds: float, target_s: float) -> str:
    verdict = "met" if seconds <= target_s else "MISSED"
    line = f"[churn] {what}: {seconds:.2f} s (target {target_s:g} s: {verdict})"
    print(line)
    return line


# ------------------------------------------------------------------ tarn-authz as a process, HAProxy enforcing it

AUTHZ_SERVICE = "triton_prod"
GATEWAY_TOKEN = "churn-gateway-token"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


def write_policies(folder: Path) -> Path:
    """alice may infer on every model; bob on none."""
    servicedef = json.loads((ROOT / "deploy" / "ranger" / "triton-servicedef.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{AUTHZ_SERVICE}.json").write_text(json.dumps({
        "serviceName": AUTHZ_SERVICE, "policyVersion": 1, "serviceDef": servicedef, "policies": [
            {"id": 1, "name": "alice-infers", "isEnabled": True, "isAuditEnabled": False,
             "resources": {"model": {"values": ["*"]}},
             "policyItems": [{"users": ["alice"], "accesses": [{"type": "infer", "isAllowed": True}]}]}]}))
    return folder


class AuthzProcess:
    """``python -m tarn_authz`` on a fixed port, so a restart keeps the address."""

    def __init__(self, workdir: Path, port: Optional[int] = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None
        write_policies(workdir / "policies")

    def start(self) -> "AuthzProcess":
        env = dict(os.environ, TARN_AUTHZ_RANGER_SERVICE=AUTHZ_SERVICE,
                   TARN_AUTHZ_POLICY_DIR=str(self.workdir / "policies"),
                   TARN_AUTHZ_CACHE_DIR=str(self.workdir / "cache"), TARN_AUTHZ_GATEWAY_TOKEN=GATEWAY_TOKEN,
                   TARN_AUTHZ_SERVE_DEPLOYMENTS="false", TARN_AUTHZ_HOST="127.0.0.1",
                   TARN_AUTHZ_PORT=str(self.port), TARN_AUTHZ_LOG_JSON="false")
        log = open(self.workdir / "authz.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tarn_authz"], env=env, cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    async def decides(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                answer = await client.get(f"{self.url}/authorize", params={"model": MODEL, "action": "infer",
                                                                          "user": "alice"},
                                          headers={"X-TARN-Token": GATEWAY_TOKEN})
            return answer.status_code == 200 and answer.text.strip() == "true"
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)


class AuthzHaproxy:
    """HAProxy rendered from deploy/haproxy/haproxy-authz.cfg.tmpl (the Lua PEP), its backend
    ``triton_backend`` empty: gateway-sync fills it through this HAProxy's own socket."""

    BACKEND = "triton_backend"

    def __init__(self, authz_url: str, cache_ttl_s: float = 0.3) -> None:
        # A short directory: a unix socket path must stay under 108 bytes.
        self.run_dir = Path(tempfile.mkdtemp(prefix="tarn-churn-"))
        self.http_port, self.index_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.socket = str(self.run_dir / "haproxy-authz.sock")
        render = _load_render_authz()
        self.cfg = self.run_dir / "haproxy.cfg"
        self.cfg.write_text(render.render(
            run_dir=self.run_dir, http_port=self.http_port, index_port=self.index_port, authz_url=authz_url,
            gateway_token=GATEWAY_TOKEN, users=[f"user {u} insecure-password {p}" for u, p in PASSWORDS.items()],
            cache_ttl_s=cache_ttl_s, timeout_ms=500))
        check = subprocess.run(["haproxy", "-c", "-f", str(self.cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(self.run_dir / "haproxy.log", "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.cfg)], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    async def wait_ready(self) -> None:
        await until(lambda: os.path.exists(self.socket), 20, "haproxy-authz's stats socket")

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


def _load_render_authz():
    return load_script("deploy/haproxy/render_authz.py")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------ gateway-sync replicas as processes

def replica_group(replica_id: str) -> str:
    """gateway-sync's consumer group of one replica (see tarn_gateway_sync.discovery.consumer_config)."""
    return f"gateway-sync.{replica_id}"


async def one_leader(replicas: dict) -> Optional[str]:
    roles = {name: await r.role() for name, r in replicas.items()}
    leaders = [n for n, role in roles.items() if role == "leader"]
    return leaders[0] if len(leaders) == 1 and all(roles.values()) else None
