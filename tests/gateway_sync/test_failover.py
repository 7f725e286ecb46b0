"""Replicas as real processes: SIGKILL the leader during churn; restart a lone replica."""
import asyncio
import random

import pytest

from tarn_shared import events as ev

from .support import EventPublisher, Gateways, Replica, settings_for, until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


class Churn:
    """Instances coming up and going away, tracking what should be routed."""

    def __init__(self, publisher: EventPublisher, first_port: int) -> None:
        self.publisher = publisher
        self.next_port = first_port
        self.live: set = set()
        self.rng = random.Random(7)

    async def step(self) -> None:
        if self.live and self.rng.random() < 0.35:
            port = self.rng.choice(sorted(self.live))
            self.live.discard(port)
            await self.publisher.emit(self.rng.choice([ev.InstanceStopped, ev.InstanceUnready]), port)
        else:
            port = self.next_port
            self.next_port += 1
            self.live.add(port)
            await self.publisher.emit(ev.InstanceReady, port)

    async def run(self, steps: int, pause_s: float = 0.02) -> None:
        for _ in range(steps):
            await self.step()
            await asyncio.sleep(pause_s)

    def expected(self) -> set:
        return {f"127.0.0.1:{p}" for p in self.live}


async def _routed_exactly(gateways: Gateways, expected: set) -> bool:
    servers = {f"{s.ip}:{s.port}" for s in await gateways.haproxy_all()}
    return servers == expected and set(await gateways.haproxy_ready()) == expected and \
        set(gateways.znodes()) == expected


async def test_killing_the_leader_mid_churn_leaves_the_standby_converged(stack, redis_url, deployment, zk_hosts,
                                                                         haproxy_backend, tmp_path):
    publisher = EventPublisher(redis_url, deployment)
    gateways = Gateways(haproxy_backend["socket"], haproxy_backend["dyn"]["name"], zk_hosts)
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    replicas = {name: Replica(settings_for(stack, zk_hosts, replica=name, deployment=deployment,
                                           zk_session_timeout_s=2.0), tmp_path / f"{name}.log")
                for name in ("a", "b")}
    try:
        await until(lambda: _one_leader(replicas), 30, "one leader elected")
        leader = await _one_leader(replicas)
        churn = Churn(publisher, 45001)
        await churn.run(40)
        replicas[leader].kill()
        await churn.run(40)
        survivor = next(n for n in replicas if n != leader)
        await until(lambda: _is(replicas[survivor], "leader"), 20, "standby took over")
        await until(lambda: _routed_exactly(gateways, churn.expected()), 20,
                    lambda: f"standby converged (expected {len(churn.expected())})")
        owners = set(gateways.owners().values())
        assert len(owners) <= 1, "znodes of the dead leader's session survived"
    finally:
        for replica in replicas.values():
            replica.stop()
        gateways.close()
        await publisher.close()


async def test_a_restarted_lone_replica_converges_on_what_happened_while_it_was_down(
        stack, redis_url, deployment, zk_hosts, haproxy_backend, tmp_path):
    publisher = EventPublisher(redis_url, deployment)
    gateways = Gateways(haproxy_backend["socket"], haproxy_backend["dyn"]["name"], zk_hosts)
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    settings = settings_for(stack, zk_hosts, replica="lone", deployment=deployment, zk_session_timeout_s=2.0)
    replica = Replica(settings, tmp_path / "lone-1.log")
    try:
        await until(lambda: _is(replica, "leader"), 30, "leader")
        churn = Churn(publisher, 46001)
        await churn.run(30)
        await until(lambda: _routed_exactly(gateways, churn.expected()), 20, "first run converged")
        replica.kill()
        await churn.run(30)
        replica = Replica(settings, tmp_path / "lone-2.log")
        await until(lambda: _routed_exactly(gateways, churn.expected()), 30,
                    lambda: f"restarted replica converged (expected {len(churn.expected())})")
    finally:
        replica.stop()
        gateways.close()
        await publisher.close()


async def _one_leader(replicas):
    roles = {name: await r.role() for name, r in replicas.items()}
    leaders = [n for n, role in roles.items() if role == "leader"]
    return leaders[0] if len(leaders) == 1 and all(roles.values()) else None


async def _is(replica, role):
    return await replica.role() == role
