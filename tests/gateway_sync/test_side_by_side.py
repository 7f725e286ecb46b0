"""Several deployments on one gateway-sync, one HAProxy and one ZooKeeper (all real): each
keeps exactly its own servers and znodes through many full reconciles; a stopped one
(its record removed) loses its own and nobody else's; a second claim on an owned backend
and path is refused; a deployment that moves leaves its old place empty."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Dict, List, Tuple

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_shared import events as ev
from tarn_shared.deployments import put_record, remove_record

from .support import EventPublisher, in_process, settings_for, until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
RECONCILE_S = 1.0
HOLD_S = 3.5  # more than three full reconciles


class Side:
    """One deployment as its AM and node-agents would publish it."""

    def __init__(self, redis_url: str, zk_hosts: str, backend: str, path: str, ports: List[int], ts: float) -> None:
        name = f"s{uuid.uuid4().hex[:10]}"
        self.publisher = EventPublisher(redis_url, name, app_id=f"application_{name}_0001")
        self.ports = ports
        self.record = ev.DeploymentRecord(deployment=name, app_id=self.publisher.app_id, zk_ensemble=zk_hosts,
                                          zk_path=path, haproxy_backend=backend, ts=ts)

    @property
    def name(self) -> str:
        return self.record.deployment

    @property
    def addresses(self) -> set:
        return {f"127.0.0.1:{p}" for p in self.ports}

    async def start(self) -> None:
        await put_record(self.publisher.client, self.record)
        for port in self.ports:
            await self.publisher.emit(ev.InstanceReady, port)
        await self.publisher.snapshot(self.ports)  # authoritative: its reconcile removes what it does not know

    async def move(self, backend: str, path: str) -> None:
        self.record = self.record.model_copy(update={"haproxy_backend": backend, "zk_path": path})
        await put_record(self.publisher.client, self.record)

    async def stop(self) -> None:
        await remove_record(self.publisher.client, self.record)


class Places:
    """What HAProxy and ZooKeeper hold, read back."""

    def __init__(self, api, zk_hosts: str) -> None:
        self.api = api
        self.zk = KazooClient(hosts=zk_hosts)
        self.zk.start(timeout=15)

    async def servers(self, backend: str) -> Dict[str, str]:
        """``ip:port`` -> server name of every server pointed somewhere, in any state."""
        return {f"{s.ip}:{s.port}": s.name for s in await self.api.servers(backend) if s.ip != "0.0.0.0"}

    def znodes(self, path: str) -> Dict[str, Tuple[str, int]]:
        """znode name -> (deployment in its data, ephemeral owner)."""
        if not self.zk.exists(path):
            return {}
        found = {}
        for child in self.zk.get_children(path):
            try:
                data, stat = self.zk.get(f"{path}/{child}")
            except NoNodeError:  # deleted between the listing and the read
                continue
            found[child] = (json.loads(data)["deployment"], stat.ephemeralOwner)
        return found

    async def holds(self, side: Side, backend: str, path: str) -> bool:
        """Exactly ``side``'s servers in ``backend`` and its znodes under ``path``."""
        znodes = {name: deployment for name, (deployment, _) in self.znodes(path).items()}
        return set(await self.servers(backend)) == side.addresses and znodes == {a: side.name for a in side.addresses}

    async def empty(self, backend: str, path: str) -> bool:
        return not await self.servers(backend) and not self.znodes(path)

    def close(self) -> None:
        self.zk.stop()
        self.zk.close()


@pytest.fixture
async def places(haproxy_backend, zk_hosts):
    reader = Places(RuntimeApi(haproxy_backend["socket"]), zk_hosts)
    yield reader
    reader.close()


def sides(redis_url, zk_hosts, *claims):
    now = time.time()
    return [Side(redis_url, zk_hosts, backend, path, [41000 + 10 * i + n for n in range(count)], now + i)
            for i, (backend, path, count) in enumerate(claims)]


def settings(stack, zk_hosts, *deployments):
    return settings_for(stack, zk_hosts, deployments=[d.name for d in deployments], reconcile_interval_s=RECONCILE_S)


def reconciles(service) -> float:
    return service.metrics.reconciles.labels("periodic")._value.get()


async def close(*deployments: Side) -> None:
    for side in deployments:
        await side.publisher.close()


async def test_two_deployments_keep_exactly_their_own_and_a_stopped_one_takes_only_its_own(
        stack, redis_url, zk_hosts, haproxy_backend, places):
    dyn, slots = haproxy_backend["dyn"]["name"], haproxy_backend["slots"]["name"]
    a, b = sides(redis_url, zk_hosts, (dyn, "/services/triton/a", 2), (slots, "/services/triton/b", 3))
    try:
        async with in_process(settings(stack, zk_hosts, a, b)) as service:
            await a.start()
            await b.start()
            await until(lambda: places.holds(a, dyn, "/services/triton/a"), 15, "a routed")
            await until(lambda: places.holds(b, slots, "/services/triton/b"), 15, "b routed")
            a_servers, a_znodes = await places.servers(dyn), places.znodes("/services/triton/a")
            before = reconciles(service)
            await asyncio.sleep(HOLD_S)
            assert reconciles(service) - before >= 3 and service.control.last_reconcile["ok"]
            assert await places.holds(a, dyn, "/services/triton/a")
            assert await places.holds(b, slots, "/services/triton/b")

            await b.stop()
            await until(lambda: places.empty(slots, "/services/triton/b"), 15, "b's servers and znodes gone")
            await asyncio.sleep(2 * RECONCILE_S)
            assert await places.empty(slots, "/services/triton/b")
            assert await places.servers(dyn) == a_servers and places.znodes("/services/triton/a") == a_znodes
            assert b.name not in service.discovery.records
    finally:
        await close(a, b)


async def test_a_second_claim_on_an_owned_backend_and_path_is_refused_until_the_owner_stops(
        stack, redis_url, zk_hosts, haproxy_backend, places):
    dyn, path = haproxy_backend["dyn"]["name"], "/services/triton/instances"
    first, second = sides(redis_url, zk_hosts, (dyn, path, 2), (dyn, path, 2))
    try:
        async with in_process(settings(stack, zk_hosts, first, second)) as service:
            await first.start()
            await until(lambda: places.holds(first, dyn, path), 15, "the first claim routed")
            await second.start()
            refused = service.metrics.claims_refused
            await until(lambda: refused.labels(second.name, "haproxy")._value.get() == 1
                        and refused.labels(second.name, "zookeeper")._value.get() == 1, 10, "the refusal counted")
            await asyncio.sleep(HOLD_S)
            assert await places.holds(first, dyn, path)  # no fight: the second never wrote
            assert refused.labels(second.name, "haproxy")._value.get() == 1  # counted once, not per reconcile
            assert len(service.health()["deployments"][second.name]["refused"]) == 2

            await first.stop()
            await until(lambda: places.holds(second, dyn, path), 15, "the second takes the free place")
    finally:
        await close(first, second)


async def test_a_deployment_that_moves_leaves_its_old_backend_and_path_empty(
        stack, redis_url, zk_hosts, haproxy_backend, places):
    dyn, slots = haproxy_backend["dyn"]["name"], haproxy_backend["slots"]["name"]
    (mover,) = sides(redis_url, zk_hosts, (dyn, "/services/triton/old", 2))
    try:
        async with in_process(settings(stack, zk_hosts, mover)):
            await mover.start()
            await until(lambda: places.holds(mover, dyn, "/services/triton/old"), 15, "routed at the old place")
            await mover.move(slots, "/services/triton/new")
            await until(lambda: places.holds(mover, slots, "/services/triton/new"), 15, "routed at the new place")
            await until(lambda: places.empty(dyn, "/services/triton/old"), 15, "the old place cleaned")
            await asyncio.sleep(2 * RECONCILE_S)
            assert await places.empty(dyn, "/services/triton/old")
            assert await places.holds(mover, slots, "/services/triton/new")
    finally:
        await close(mover)


@pytest.mark.parametrize("change", ["moved", "stopped"])
async def test_a_deployment_that_changes_while_no_replica_runs_has_its_old_backend_cleaned_by_the_next(
        stack, redis_url, zk_hosts, haproxy_backend, places, change):
    """HAProxy keeps its servers while gateway-sync is down, and the record's old version
    is gone: only the ownership kept in Redis says whom that backend's servers were for."""
    dyn, slots = haproxy_backend["dyn"]["name"], haproxy_backend["slots"]["name"]
    (side,) = sides(redis_url, zk_hosts, (dyn, "/services/triton/before", 2))
    try:
        async with in_process(settings(stack, zk_hosts, side)):
            await side.start()
            await until(lambda: places.holds(side, dyn, "/services/triton/before"), 15, "routed")
        assert set(await places.servers(dyn)) == side.addresses  # left in HAProxy by the stopped replica
        if change == "moved":
            await side.move(slots, "/services/triton/after")
        else:
            await side.stop()
        async with in_process(settings(stack, zk_hosts, side)):
            await until(lambda: places.empty(dyn, "/services/triton/before"), 15, "the old backend cleaned")
            if change == "moved":
                await until(lambda: places.holds(side, slots, "/services/triton/after"), 15, "routed at the new place")
    finally:
        await close(side)
