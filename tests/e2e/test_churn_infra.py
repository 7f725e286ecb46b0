"""Redis restarted without persistence, a ZooKeeper session expiry and an HAProxy restart,
each during churn: HAProxy and ZooKeeper match the live instances again, traffic reaches
only live instances, and no lifecycle event was lost."""
import asyncio
import time

import pytest

from tests.e2e.churn_support import world  # noqa: F401 (the fixture)
from tests.e2e.churn_support import assert_no_event_lost, assert_routed_to_live_only, replica_group, report, wait_converged
from tests.gateway_sync.support import Replica, in_process, settings_for
from tests.support.polling import until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
GENEROUS_S = 20.0


@pytest.fixture
async def replica(stack, deployment, zk_hosts, tmp_path):
    process = Replica(settings_for(stack, zk_hosts, replica="infra", deployment=deployment,
                                   zk_session_timeout_s=2.0), tmp_path / "replica.log")
    await until(lambda: _is(process, "leader"), 30, "leader")
    yield process
    process.stop()


async def test_redis_restarted_without_persistence_mid_churn_converges(stack, world, replica):
    fleet, gateways, frontend = world
    await fleet.churn_for(3.0)
    await wait_converged(gateways, fleet)
    fleet.start_churn()
    await asyncio.sleep(1.0)
    async with fleet.quiet():  # cut at a clean point: every event counted so far was taken by the old Redis
        since = len(fleet.stats.published_ids)
        await asyncio.to_thread(stack.kill, "redis")
    await asyncio.sleep(1.0)  # agents keep retrying their events meanwhile
    await asyncio.to_thread(stack.start, "redis")
    back_at = time.monotonic()
    await fleet.stop_churn()  # drains in flight finish: their events go to the new Redis
    settled_at = time.monotonic()
    await wait_converged(gateways, fleet, GENEROUS_S)
    converged_at = time.monotonic()
    print(f"\n[churn] Redis SIGKILL + restart without persistence; churn {fleet.stats}")
    report("Redis restarted empty -> gateways match the truth (from Redis back)", converged_at - back_at, 5.0)
    report("Redis restarted empty -> converged after the last event", converged_at - settled_at, 2.0)
    assert converged_at - back_at < GENEROUS_S
    await assert_routed_to_live_only(frontend, fleet)
    await assert_no_event_lost(fleet, replica_group("infra"), since_index=since)


async def test_an_haproxy_restart_mid_churn_gets_every_live_server_back(stack, world, replica):
    fleet, gateways, frontend = world
    await fleet.churn_for(3.0)
    await wait_converged(gateways, fleet)
    fleet.start_churn()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(stack.restart, "haproxy")
    back_at = time.monotonic()
    await fleet.stop_churn()  # drains in flight finish: their events go to the new Redis
    settled_at = time.monotonic()
    await wait_converged(gateways, fleet, GENEROUS_S)
    converged_at = time.monotonic()
    print(f"\n[churn] HAProxy SIGKILL + restart; churn {fleet.stats}")
    report("HAProxy restarted -> servers match the truth (from HAProxy back)", converged_at - back_at, 2.0)
    report("HAProxy restarted -> converged after the last event", converged_at - settled_at, 2.0)
    # HAProxy's first health check of a re-added server: give traffic a moment to spread.
    await until(lambda: _answering_all(frontend, fleet), 10, "traffic reaching every live instance")
    await assert_routed_to_live_only(frontend, fleet)
    await assert_no_event_lost(fleet, replica_group("infra"))


async def test_a_zookeeper_session_expiry_mid_churn_restores_every_znode(stack, deployment, zk_hosts, world,
                                                                        expire_session):
    """gateway-sync runs in this process here, so its session can be expired for real."""
    fleet, gateways, frontend = world
    async with in_process(settings_for(stack, zk_hosts, replica="zk-expiry", deployment=deployment,
                                       zk_session_timeout_s=4.0)) as service:
        await fleet.churn_for(3.0)
        await wait_converged(gateways, fleet)
        ensemble = service.ensembles.get(zk_hosts)
        old_session = ensemble.session_id
        fleet.start_churn()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(expire_session, ensemble.client)
        await until(lambda: ensemble.session_id not in (None, old_session), GENEROUS_S, "a new session")
        reconnected_at = time.monotonic()
        new_session = ensemble.session_id

        async def restored() -> bool:
            owners = gateways.owners()
            return set(owners.values()) <= {new_session} and set(owners) == fleet.truth()

        await until(restored, GENEROUS_S, "every live znode back under the new session")
        restored_at = time.monotonic()
        await asyncio.sleep(1.0)
        await fleet.stop_churn()
        await wait_converged(gateways, fleet, GENEROUS_S)
        print(f"\n[churn] ZooKeeper session expired; churn {fleet.stats}")
        report("ZooKeeper session expiry -> every znode back (from reconnecting)", restored_at - reconnected_at, 2.0)
        assert set(gateways.owners().values()) <= {new_session}
        await assert_routed_to_live_only(frontend, fleet)
        await assert_no_event_lost(fleet, replica_group("zk-expiry"))


async def _answering_all(frontend, fleet) -> bool:
    from tests.e2e.churn_support import traffic
    answered, _ = await traffic(frontend, requests=4 * max(1, len(fleet.truth())))
    return set(answered) == fleet.live_ports()


async def _is(replica, role):
    return await replica.role() == role
