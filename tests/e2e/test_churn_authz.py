"""tarn-authz killed with SIGKILL during churn, behind the real enforcement point: HAProxy
rendered from deploy/haproxy/haproxy-authz.cfg.tmpl with tarn_authz.lua, its backend filled
by a gateway-sync process. While authz is down the Lua action fails closed (503); once it is
back, decisions come back (alice allowed, bob denied) and routing matches the live instances."""
import asyncio
import time

import httpx
import pytest

from tests.e2e.churn_support import (PASSWORDS, AuthzHaproxy, AuthzProcess, SimFleet, assert_no_event_lost,
                                     assert_routed_to_live_only, replica_group, report, traffic, wait_converged)
from tests.gateway_sync.support import Gateways, Replica, settings_for
from tests.support.polling import until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
CACHE_TTL_S = 0.3  # the Lua action's decision cache
GENEROUS_S = 20.0
ALICE = ("alice", PASSWORDS["alice"])
BOB = ("bob", PASSWORDS["bob"])


async def _statuses(url: str, auth, requests: int = 6) -> dict:
    _, statuses = await traffic(url, requests=requests, auth=auth)
    return statuses


async def test_authz_killed_mid_churn_fails_closed_then_decides_again(stack, redis_url, deployment, zk_hosts,
                                                                    tmp_path):
    authz = AuthzProcess(tmp_path).start()
    haproxy = None
    replica = None
    fleet = None
    gateways = None
    try:
        await until(authz.decides, 30, "tarn-authz deciding")
        haproxy = AuthzHaproxy(authz.url, cache_ttl_s=CACHE_TTL_S)
        await haproxy.wait_ready()
        fleet = SimFleet(redis_url, deployment, zk_hosts, AuthzHaproxy.BACKEND)
        await fleet.start()
        gateways = Gateways(haproxy.socket, AuthzHaproxy.BACKEND, zk_hosts)
        replica = Replica(settings_for(stack, zk_hosts, replica="authz-churn", deployment=deployment,
                                       haproxy_sockets=[haproxy.socket]), tmp_path / "gateway-sync.log")
        await until(lambda: _leads(replica), 30, "gateway-sync leading")
        await fleet.churn_for(3.0)
        await wait_converged(gateways, fleet)
        await assert_routed_to_live_only(haproxy.url, fleet, auth=ALICE)
        assert await _statuses(haproxy.url, BOB) == {403: 6}

        fleet.start_churn()
        await asyncio.sleep(1.0)
        authz.kill()
        killed_at = time.monotonic()
        await until(lambda: _only(haproxy.url, ALICE, {503}), 20, "alice refused with 503 while authz is down")
        closed_s = time.monotonic() - killed_at
        # Fail closed: nobody gets through while authz is down, whatever was cached before.
        # (HAProxy 2.6's Lua httpclient retries a refused connection for ~3 s: these run side by side.)
        answers = await asyncio.gather(*(_parallel_status(haproxy.url, who) for who in (ALICE, ALICE, BOB, BOB)))
        assert answers[:2] == [503, 503] and set(answers[2:]) <= {503, 403}, answers
        authz.start()
        restarted_at = time.monotonic()
        await until(lambda: _only(haproxy.url, ALICE, {200}), GENEROUS_S, "alice allowed again")
        decisions_back_s = time.monotonic() - restarted_at
        await fleet.stop_churn()
        settled_at = time.monotonic()
        await wait_converged(gateways, fleet, GENEROUS_S)
        converged_at = time.monotonic()
        print(f"\n[churn] tarn-authz SIGKILL: HAProxy's Lua answered 503 {closed_s:.2f} s after the kill "
              f"(decision cache {CACHE_TTL_S:g} s; a refused call to authz takes HAProxy 2.6's httpclient ~3 s); "
              f"churn {fleet.stats}")
        report("tarn-authz restarted -> decisions through HAProxy again (process start included)",
               decisions_back_s, 2.0)
        report("tarn-authz restarted -> gateways match the truth after the last event", converged_at - settled_at, 2.0)
        assert await _statuses(haproxy.url, BOB) == {403: 6}
        await assert_routed_to_live_only(haproxy.url, fleet, auth=ALICE)
        await assert_no_event_lost(fleet, replica_group("authz-churn"))
    finally:
        if replica is not None:
            replica.stop()
        if fleet is not None:
            await fleet.close()
        if gateways is not None:
            gateways.close()
        if haproxy is not None:
            haproxy.stop()
        authz.stop()


async def _parallel_status(url, auth) -> int:
    async with httpx.AsyncClient(timeout=10.0, auth=auth) as client:
        return (await client.post(f"{url}/v2/models/identity/infer", json={"inputs": []})).status_code


async def _only(url, auth, allowed) -> bool:
    try:
        return set(await _statuses(url, auth, requests=1)) <= allowed
    except httpx.HTTPError:
        return False


async def _leads(replica) -> bool:
    return await replica.role() == "leader"
