"""gateway-sync killed with SIGKILL during churn: the leader with a standby beside it, and a
lone replica restarted. Afterwards HAProxy and ZooKeeper match the live instances, traffic
through HAProxy's frontend reaches only live instances, and no lifecycle event was lost."""
import asyncio
import time

import pytest

from tests.e2e.churn_support import world  # noqa: F401 (the fixture)
from tests.e2e.churn_support import (assert_no_event_lost, assert_routed_to_live_only, one_leader, replica_group,
                                     report, wait_converged)
from tests.gateway_sync.support import Replica, settings_for
from tests.support.polling import until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
SESSION_TIMEOUT_S = 2.0
GENEROUS_S = 20.0


async def test_the_leader_killed_mid_churn_the_standby_takes_over_and_converges(stack, deployment, zk_hosts, world,
                                                                               tmp_path):
    fleet, gateways, frontend = world
    replicas = {name: Replica(settings_for(stack, zk_hosts, replica=name, deployment=deployment,
                                           zk_session_timeout_s=SESSION_TIMEOUT_S), tmp_path / f"{name}.log")
                for name in ("a", "b")}
    try:
        await until(lambda: one_leader(replicas), 30, "one leader elected")
        leader = await one_leader(replicas)
        survivor = next(n for n in replicas if n != leader)
        await fleet.churn_for(3.0)
        await wait_converged(gateways, fleet)
        fleet.start_churn()
        await asyncio.sleep(1.0)
        replicas[leader].kill()
        killed_at = time.monotonic()
        await asyncio.sleep(3.0)  # churn goes on while the standby waits out the session
        await fleet.stop_churn()
        settled_at = time.monotonic()
        await until(lambda: _is(replicas[survivor], "leader"), GENEROUS_S, "the standby took over")
        took_over_s = time.monotonic() - killed_at
        await wait_converged(gateways, fleet, GENEROUS_S)
        converged_at = time.monotonic()
        print(f"\n[churn] gateway-sync leader SIGKILL: standby leading after {took_over_s:.2f} s "
              f"(session timeout {SESSION_TIMEOUT_S:g} s); churn {fleet.stats}")
        report("gateway-sync leader killed -> gateways match the truth (from the kill)",
               converged_at - killed_at, SESSION_TIMEOUT_S + 2.0)
        report("gateway-sync leader killed -> converged after the last event", converged_at - settled_at, 2.0)
        assert len(set(gateways.owners().values())) <= 1, "znodes of the dead leader's session survived"
        await assert_routed_to_live_only(frontend, fleet)
        await assert_no_event_lost(fleet, replica_group(survivor))
    finally:
        for replica in replicas.values():
            replica.stop()


async def test_a_lone_replica_killed_mid_churn_and_restarted_converges(stack, deployment, zk_hosts, world, tmp_path):
    fleet, gateways, frontend = world
    settings = settings_for(stack, zk_hosts, replica="lone", deployment=deployment,
                            zk_session_timeout_s=SESSION_TIMEOUT_S)
    replica = Replica(settings, tmp_path / "lone-1.log")
    try:
        await until(lambda: _is(replica, "leader"), 30, "leader")
        await fleet.churn_for(3.0)
        await wait_converged(gateways, fleet)
        fleet.start_churn()
        await asyncio.sleep(1.0)
        replica.kill()
        await asyncio.sleep(2.0)  # events pile up unconsumed in the replica's group
        replica = Replica(settings, tmp_path / "lone-2.log")
        restarted_at = time.monotonic()
        await until(lambda: _is(replica, "leader"), GENEROUS_S, "the restarted replica leads")
        leading_at = time.monotonic()
        await asyncio.sleep(1.0)
        await fleet.stop_churn()
        settled_at = time.monotonic()
        await wait_converged(gateways, fleet, GENEROUS_S)
        converged_at = time.monotonic()
        print(f"\n[churn] lone gateway-sync SIGKILL + restart: leading {leading_at - restarted_at:.2f} s after the "
              f"restart (ZooKeeper session of the dead one: {SESSION_TIMEOUT_S:g} s); churn {fleet.stats}")
        report("lone gateway-sync restarted -> converged after the last event", converged_at - settled_at, 2.0)
        report("lone gateway-sync restarted -> leading and converged (from the restart)",
               converged_at - restarted_at, SESSION_TIMEOUT_S + 2.0)
        await assert_routed_to_live_only(frontend, fleet)
        await assert_no_event_lost(fleet, replica_group("lone"))
    finally:
        replica.stop()


async def _is(replica, role):
    return await replica.role() == role
