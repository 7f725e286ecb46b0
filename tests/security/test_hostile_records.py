"""Redis is not a trust root: hostile deployment records, lifecycle events and stored places
published to the real Redis of the test stack reach neither the real HAProxy nor the real
ZooKeeper (nor a foreign ensemble, which never sees a connection), each is counted once,
and a valid deployment next to them is served through HAProxy all along."""
from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from typing import Dict, List, Set, Tuple

import pytest
from kazoo.client import KazooClient

from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_gateway_sync.ownership import place_key
from tarn_shared import events as ev
from tarn_shared.claims import haproxy_place, zookeeper_place
from tarn_shared.deployments import put_record
from tarn_shared.streams import StreamPublisher, connect
from tests.gateway_sync.support import Backends, in_process, ports_answering, settings_for, until
from tests.support.ports import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
RECONCILE_S = 1.0
HOLD_S = 3.5  # more than three full reconciles and three polls of the records
ELECTION = "/tarn/gateway-sync/leader"


class Listener:
    """A foreign "ZooKeeper ensemble": a real TCP socket that counts who connects to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def tree(zk: KazooClient, root: str = "/", skip: Tuple[str, ...] = ()) -> Set[str]:
    """Every znode path under ``root``, leaving out the subtrees in ``skip``."""
    found: Set[str] = set()
    pending = [root]
    while pending:
        path = pending.pop()
        for child in zk.get_children(path):
            full = path.rstrip("/") + "/" + child
            if full in skip or any(full.startswith(s + "/") for s in skip):
                continue
            found.add(full)
            pending.append(full)
    return found


async def servers(api: RuntimeApi, backend: str) -> List[Tuple[str, str, int, str]]:
    return sorted((s.name, s.ip, s.port, s.admin.value) for s in await api.servers(backend))


async def publish(client, name: str, backend: str, ensemble: str, path: str, hosts: Dict[int, str]) -> None:
    """A deployment record and ready instances with a snapshot, as its AM and agents would."""
    await put_record(client, ev.DeploymentRecord(deployment=name, app_id=f"application_{name}", zk_ensemble=ensemble,
                                                 zk_path=path, haproxy_backend=backend, ts=time.time()))
    publisher, stream = StreamPublisher(client), ev.lifecycle_stream(name)
    members = []
    for port, host in hosts.items():
        endpoints = ev.Endpoints(host=host, http_port=port)
        await publisher.publish(stream, ev.InstanceReady(deployment=name, app_id=f"application_{name}",
                                                         instance_id=f"c{port}", seq=1, endpoints=endpoints))
        members.append(ev.MemberState(instance_id=f"c{port}", state=ev.InstanceState.READY, seq=1,
                                      endpoints=endpoints))
    last = await client.xrevrange(stream, count=1)
    await publisher.publish(stream, ev.MembershipSnapshot(
        deployment=name, app_id=f"application_{name}", snapshot_seq=1, lifecycle_through=last[0][0].decode(),
        desired_count=len(members), members=members))


@pytest.fixture
def backends():
    servers = Backends(2)
    yield servers
    servers.stop()


@pytest.fixture
def foreign():
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def zk(stack):
    client = KazooClient(hosts=stack.env["ZK_HOSTS"])
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


async def test_hostile_records_events_and_places_reach_neither_haproxy_nor_zookeeper(
        stack, redis_url, zk_hosts, haproxy_backend, backends, foreign, zk):
    dyn, slots = haproxy_backend["dyn"]["name"], haproxy_backend["slots"]["name"]
    chroot = zk_hosts[len(stack.env["ZK_HOSTS"]):]
    api, client = RuntimeApi(haproxy_backend["socket"]), connect(redis_url)
    tag = uuid.uuid4().hex[:8]
    valid, valid_path = f"v{tag}", "/services/triton/valid"
    victim = f"tarn-127.0.0.1:{backends.ports[0]}"  # the server the hostile commands aim at
    hostile = {  # deployment -> (backend, ensemble, path, why it is refused)
        f"semi{tag}": (f"{dyn}; set server {dyn}/{victim} state maint", zk_hosts, "/services/triton/h1", "backend"),
        f"line{tag}": (f"{dyn}\nset server {dyn}/{victim} state maint", zk_hosts, "/services/triton/h2", "backend"),
        f"other{tag}": (slots, zk_hosts, "/services/triton/h3", "backend_not_allowed"),
        f"foreign{tag}": (dyn, f"127.0.0.1:{foreign.port}", "/services/triton/h4", "zk_ensemble_not_allowed"),
        f"dots{tag}": (dyn, zk_hosts, "/services/triton/../../h5", "zk_path"),
        f"escape{tag}": (dyn, stack.env["ZK_HOSTS"], f"/services/triton/h6-{tag}", "zk_path_not_allowed"),
        f"outside{tag}": (dyn, zk_hosts, "/elsewhere/instances", "zk_path_not_allowed"),
    }
    hostile_ports = iter(free_ports(len(hostile) + 3))
    # A slot of the backend gateway-sync may not manage, holding a server someone else put there.
    await api.execute(f"set server {slots}/triton-1 addr 127.0.0.1 port {backends.ports[1]}")
    await api.execute(f"set server {slots}/triton-1 state ready")
    slots_before, root_before = await servers(api, slots), tree(zk, skip=(chroot,))
    # Places a hostile writer stored as "to clean" for the next replica group (place_store).
    group_places = ev.gateway_places_key(zk_hosts + ELECTION)
    await client.hset(group_places, mapping={
        place_key(haproxy_place(f"{dyn}; del server {dyn}/{victim}")): "",
        place_key(haproxy_place(slots)): "",
        place_key(zookeeper_place(f"127.0.0.1:{foreign.port}", "/services/triton/instances")): ""})
    settings = settings_for(stack, zk_hosts, deployments=[valid, *hostile], reconcile_interval_s=RECONCILE_S,
                            allowed_backends=[dyn])
    await backends.wait_ready()
    try:
        async with in_process(settings) as service:
            await publish(client, valid, dyn, zk_hosts, valid_path,
                          {backends.ports[0]: "127.0.0.1", backends.ports[1]: "127.0.0.1",
                           next(hostile_ports): "127.0.0.1/../x", next(hostile_ports): "evil;del server x",
                           next(hostile_ports): "ｅvil.example"})
            for name, (backend, ensemble, path, _) in hostile.items():
                await publish(client, name, backend, ensemble, path, {next(hostile_ports): "127.0.0.1"})
            served = {f"127.0.0.1:{p}" for p in backends.ports}
            valid_znodes = f"{chroot}{valid_path}"
            await until(lambda: set(zk.get_children(valid_znodes)) == served if zk.exists(valid_znodes) else False,
                        15, "the valid deployment's znodes")
            await until(lambda: _addresses(api, dyn, served), 15, "the valid deployment's servers")
            # A hostile new version of the served record is refused; the served version stays.
            await put_record(client, ev.DeploymentRecord(
                deployment=valid, app_id=f"application_{valid}", zk_ensemble=zk_hosts, zk_path=valid_path,
                haproxy_backend=f"{dyn};del server {dyn}/{victim}", ts=time.time()))
            dyn_routed = await servers(api, dyn)
            await asyncio.sleep(HOLD_S)

            assert await servers(api, dyn) == dyn_routed and {f"{ip}:{port}" for _, ip, port, a in dyn_routed
                                                              if a == "ready"} == served
            assert await ports_answering(haproxy_backend["dyn"]["port"]) == set(backends.ports)
            assert await servers(api, slots) == slots_before
            assert tree(zk, skip=(chroot,)) == root_before  # nothing outside the test's chroot
            inside = tree(zk, chroot, skip=(f"{chroot}/tarn",))  # the election's lock aside
            assert inside == {f"{chroot}/services", f"{chroot}/services/triton", valid_znodes} | \
                {f"{valid_znodes}/{a}" for a in served}
            assert foreign.accepted == 0
            assert service.discovery.records[valid].haproxy_backend == dyn
            assert service.control.last_reconcile["ok"]

            refused = lambda what, reason: service.metrics.refused.labels(what, reason)._value.get()  # noqa: E731
            reasons = [why for *_, why in hostile.values()]
            assert refused("record", "backend") == reasons.count("backend") + 1  # the hostile new version
            for reason in set(reasons) - {"backend"}:
                assert refused("record", reason) == reasons.count(reason), reason
            assert refused("instance", "host") == 3
            assert refused("place", "backend_not_allowed") == 2 and refused("place", "zk_path_not_allowed") == 1
            assert set(service.discovery.records) == {valid}
    finally:
        await client.aclose()


async def _addresses(api: RuntimeApi, backend: str, expected: Set[str]) -> bool:
    return {f"{ip}:{port}" for _, ip, port, admin in await servers(api, backend) if admin == "ready"} == expected
