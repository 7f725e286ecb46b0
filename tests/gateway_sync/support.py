"""Helpers for gateway-sync's integration tests: publishing the node-agent's and the AM's
events, reading HAProxy and ZooKeeper back, running replicas in or out of process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Dict, List, Optional

import httpx
from pydantic import SecretStr
from kazoo.client import KazooClient
from prometheus_client import CollectorRegistry

from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_gateway_sync.plan import Admin
from tarn_gateway_sync.replica import GatewaySync
from tarn_gateway_sync.settings import DEFAULT_BACKENDS, GatewaySyncSettings
from tarn_gateway_sync.sync_metrics import Metrics
from tarn_shared import events as ev
from tarn_shared.defaults import ZK_PATH
from tarn_shared.deployments import put_record
from tarn_shared.streams import StreamPublisher, connect
from tests.support.polling import until
from tests.support.ports import free_ports
from tests.support.processes import terminate

ROOT = Path(__file__).resolve().parents[2]


class EventPublisher:
    """Publishes lifecycle events as node-agents and the AM would."""

    def __init__(self, redis_url: str, deployment: str, app_id: str = "application_1_0001") -> None:
        self.client = connect(redis_url)
        self.publisher = StreamPublisher(self.client)
        self.deployment = deployment
        self.app_id = app_id
        self.stream = ev.lifecycle_stream(deployment)
        self.seq: Dict[str, int] = {}

    async def record(self, zk_hosts: str, backend: str) -> None:
        await put_record(self.client, ev.DeploymentRecord(deployment=self.deployment, app_id=self.app_id,
                                                          zk_ensemble=zk_hosts, zk_path=ZK_PATH,
                                                          haproxy_backend=backend))

    async def emit(self, kind, port: int, **extra) -> ev.InstanceEvent:
        instance_id = f"container_{port}"
        self.seq[instance_id] = self.seq.get(instance_id, 0) + 1
        event = kind(deployment=self.deployment, app_id=self.app_id, instance_id=instance_id,
                     seq=self.seq[instance_id], endpoints=ev.Endpoints(host="127.0.0.1", http_port=port),
                     models=["identity"], **extra)
        await self.publisher.publish(self.stream, event)
        return event

    async def snapshot(self, ready_ports: List[int]) -> None:
        """The AM's full view, marked as built from everything published so far."""
        last = await self.client.xrevrange(self.stream, count=1)
        through = last[0][0].decode() if last else None
        members = [ev.MemberState(instance_id=f"container_{p}", state=ev.InstanceState.READY,
                                  seq=self.seq.get(f"container_{p}", 1),
                                  endpoints=ev.Endpoints(host="127.0.0.1", http_port=p), models=["identity"])
                   for p in ready_ports]
        await self.publisher.publish(self.stream, ev.MembershipSnapshot(
            deployment=self.deployment, app_id=self.app_id, snapshot_seq=int(time.time() * 1000),
            lifecycle_through=through, desired_count=len(members), members=members))

    async def close(self) -> None:
        await self.client.aclose()


class Gateways:
    """Reads what HAProxy and ZooKeeper route, for assertions."""

    def __init__(self, socket_path: str, backend: str, zk_hosts: str) -> None:
        self.api = RuntimeApi(socket_path)
        self.backend = backend
        self.zk = KazooClient(hosts=zk_hosts)
        self.zk.start(timeout=15)

    async def haproxy_ready(self) -> Dict[str, str]:
        """``ip:port`` -> server name of every server in state ready (not drain or maint)."""
        return {f"{s.ip}:{s.port}": s.name for s in await self.api.servers(self.backend)
                if s.admin is Admin.READY and s.ip != "0.0.0.0"}

    async def haproxy_all(self):
        return await self.api.servers(self.backend)

    def znodes(self) -> Dict[str, dict]:
        if not self.zk.exists(ZK_PATH):
            return {}
        return {name: json.loads(self.zk.get(f"{ZK_PATH}/{name}")[0]) for name in self.zk.get_children(ZK_PATH)}

    def owners(self) -> Dict[str, int]:
        if not self.zk.exists(ZK_PATH):
            return {}
        return {name: self.zk.exists(f"{ZK_PATH}/{name}").ephemeralOwner for name in self.zk.get_children(ZK_PATH)}

    async def routed(self) -> set:
        """Addresses routed by both gateways (HAProxy ready and znode present)."""
        return set(await self.haproxy_ready()) & set(self.znodes())

    async def anything_routed(self) -> set:
        return set(await self.haproxy_ready()) | set(self.znodes())

    def close(self) -> None:
        self.zk.stop()
        self.zk.close()


def settings_for(stack, zk_hosts: str, replica: str = "r1", deployment: Optional[str] = None,
                 **overrides) -> GatewaySyncSettings:
    """Serves only the test's own deployment: the Redis holds every test's records."""
    values = dict(deployments=[deployment] if deployment else [], redis_url=stack.env["REDIS_URL"], zk_hosts=zk_hosts, haproxy_sockets=[stack.env["HAPROXY_SOCKET"]],
                  replica_id=replica, zk_session_timeout_s=4.0, haproxy_watch_interval_s=0.2,
                  reconcile_interval_s=10.0, drain_timeout_s=5.0, log_json=False)
    # The test stack's own backends besides the defaults (the demo's and the seeds').
    values["allowed_backends"] = DEFAULT_BACKENDS + [b["name"] for b in stack.state["test_backends"]]
    values.update(overrides)
    return GatewaySyncSettings.load(**values)


@asynccontextmanager
async def in_process(settings: GatewaySyncSettings):
    service = GatewaySync(settings, Metrics(CollectorRegistry()))
    await service.start()
    try:
        await until(lambda: service.is_leader, 20, "leadership")
        yield service
    finally:
        await service.stop()


class Replica:
    """A gateway-sync replica as its own process (``python -m tarn_gateway_sync``)."""

    def __init__(self, settings: GatewaySyncSettings, log_path: Path) -> None:
        self.port = free_ports(1)[0]
        env = dict(os.environ)
        for key, value in settings.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            text = json.dumps(value) if isinstance(value, list) else str(value)  # lists may hold commas
            env[f"TARN_GATEWAY_SYNC_{key.upper()}"] = text
        env["TARN_GATEWAY_SYNC_PORT"] = str(self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tarn_gateway_sync"], env=env, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    async def health(self) -> Optional[dict]:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                return (await client.get(f"{self.url}/healthz")).json()
        except (httpx.HTTPError, ValueError):
            return None

    async def role(self) -> Optional[str]:
        health = await self.health()
        return health["role"] if health else None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        terminate(self.proc, timeout_s=15)
        self.log.close()


class Backends:
    """Real HTTP servers on loopback ports, one process."""

    def __init__(self, count: int) -> None:
        self.ports = free_ports(count)
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("backends.py")),
                                      *map(str, self.ports)], cwd=ROOT)

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            for port in self.ports:
                async def answers(port=port):
                    try:
                        return (await client.get(f"http://127.0.0.1:{port}/v2/health/ready")).status_code == 200
                    except httpx.HTTPError:
                        return False
                await until(answers, 30, f"backend {port}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def ports_answering(frontend_port: int, requests: int = 30) -> set:
    """Which backends answer through HAProxy's frontend."""
    seen = set()
    async with httpx.AsyncClient(timeout=3.0) as client:
        for _ in range(requests):
            response = await client.get(f"http://127.0.0.1:{frontend_port}/whoami")
            if response.status_code == 200:
                seen.add(response.json()["port"])
    return seen
