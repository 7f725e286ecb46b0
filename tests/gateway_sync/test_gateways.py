"""gateway-sync against real Redis, ZooKeeper and HAProxy, with real HTTP backends."""
import asyncio

import pytest

from tarn_gateway_sync.haproxy import HaproxyCommandError, RuntimeApi
from tarn_gateway_sync.applied import VERIFY_ROUNDS
from tarn_gateway_sync.plan import AddServer, Admin, DrainServer, ReadyServer, ServerState
from tarn_shared import events as ev
from tarn_shared.defaults import ZK_PATH

from .support import Backends, EventPublisher, Gateways, in_process, ports_answering, settings_for, until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def addr(port):
    return f"127.0.0.1:{port}"


@pytest.fixture
async def world(stack, redis_url, deployment, zk_hosts, haproxy_backend):
    publisher = EventPublisher(redis_url, deployment)
    gateways = Gateways(haproxy_backend["socket"], haproxy_backend["dyn"]["name"], zk_hosts)
    yield publisher, gateways
    gateways.close()
    await publisher.close()


@pytest.fixture
def backends():
    servers = Backends(3)
    yield servers
    servers.stop()


async def test_instances_come_and_go_and_traffic_through_haproxy_follows(stack, zk_hosts, haproxy_backend, world,
                                                                         backends):
    publisher, gateways = world
    await backends.wait_ready()
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment)):
        for port in backends.ports:
            await publisher.emit(ev.InstanceReady, port)
        everyone = {addr(p) for p in backends.ports}
        await until(lambda: gateways.routed(), 15, "routing")
        await until(lambda: _eq(gateways.routed(), everyone), 15, "all three routed")
        node = gateways.znodes()[addr(backends.ports[0])]
        assert node["url"] == f"http://{addr(backends.ports[0])}" and node["container_id"] == \
            f"container_{backends.ports[0]}" and node["app_id"] == publisher.app_id and node["models"] == ["identity"]
        assert await ports_answering(haproxy_backend["dyn"]["port"]) == set(backends.ports)

        gone = backends.ports[1]
        await publisher.emit(ev.InstanceStopped, gone, exit_code=0)
        await until(lambda: _eq(gateways.anything_routed(), everyone - {addr(gone)}), 10, "stopped one removed")
        assert addr(gone) not in {f"{s.ip}:{s.port}" for s in await gateways.haproxy_all()}
        assert await ports_answering(haproxy_backend["dyn"]["port"]) == set(backends.ports) - {gone}


async def test_the_seeds_placeholder_slots_are_filled_and_a_full_backend_is_an_error(
        stack, redis_url, deployment, zk_hosts, haproxy_backend, backends):
    publisher = EventPublisher(redis_url, deployment)
    gateways = Gateways(haproxy_backend["socket"], haproxy_backend["slots"]["name"], zk_hosts)
    await backends.wait_ready()
    await publisher.record(zk_hosts, haproxy_backend["slots"]["name"])
    try:
        async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment)) as service:
            await _route(publisher, gateways, backends.ports, "slots filled")
            assert set((await gateways.haproxy_ready()).values()) == {"triton-1", "triton-2", "triton-3"}
            assert await ports_answering(haproxy_backend["slots"]["port"]) == set(backends.ports)

            await publisher.emit(ev.InstanceStopped, backends.ports[0])
            await until(lambda: _lacks(gateways.haproxy_ready(), addr(backends.ports[0])), 10, "slot freed")
            extra = [40001 + i for i in range(7)]  # 2 routed + 7 more than the 8 slots hold
            for port in extra:
                await publisher.emit(ev.InstanceReady, port)
            await until(lambda: service.metrics.errors.labels("slots_exhausted")._value.get() >= 1, 10,
                        "slots exhausted reported")
            assert len(await gateways.haproxy_ready()) == 8
    finally:
        gateways.close()
        await publisher.close()


async def test_a_draining_instance_leaves_both_gateways_and_is_announced_unrouted(stack, zk_hosts, haproxy_backend,
                                                                                   world, backends):
    publisher, gateways = world
    await backends.wait_ready()
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment)):
        await _route(publisher, gateways, backends.ports, "routed")
        leaving = backends.ports[2]
        draining = await publisher.emit(ev.InstanceDraining, leaving, timeout_s=30)

        async def unrouted():
            entries = await publisher.client.xrange(publisher.stream)
            found = [e for e in (ev.decode(f) for _, f in entries) if isinstance(e, ev.InstanceUnrouted)]
            return found
        await until(unrouted, 10, "instance.unrouted published")
        announced = (await unrouted())[0]
        assert announced.instance_id == draining.instance_id and announced.seq == draining.seq
        assert addr(leaving) not in gateways.znodes()
        assert addr(leaving) not in await gateways.haproxy_ready()
        assert leaving not in await ports_answering(haproxy_backend["dyn"]["port"])
        await publisher.emit(ev.InstanceStopped, leaving)
        await until(lambda: _lacks_any(gateways.haproxy_all(), addr(leaving)), 10, "drained server deleted")


async def test_a_zookeeper_session_expiry_restores_every_znode(stack, zk_hosts, haproxy_backend, world,
                                                               expire_session):
    publisher, gateways = world
    ports = [41001 + i for i in range(20)]
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment)) as service:
        await _route(publisher, gateways, ports, "routed")
        ensemble = service.ensembles.get(zk_hosts)
        old_session = ensemble.session_id
        await asyncio.to_thread(expire_session, ensemble.client)
        await until(lambda: ensemble.session_id not in (None, old_session), 20, "a new session")
        await until(lambda: set(gateways.owners().values()) == {ensemble.session_id}
                    and set(gateways.owners()) == {addr(p) for p in ports}, 10, "znodes restored")


async def test_an_haproxy_restart_gets_all_servers_back(stack, zk_hosts, haproxy_backend, world):
    publisher, gateways = world
    ports = [42001 + i for i in range(10)]
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment)) as service:
        await _route(publisher, gateways, ports, "routed")
        await asyncio.to_thread(stack.restart, "haproxy")
        await until(lambda: _eq(gateways.haproxy_ready(), {addr(p) for p in ports}), 15,
                    lambda: f"servers back (last reconcile {service.control.last_reconcile}, "
                            f"identity {service.restarts.identity})")
        # The counter moves when that reconcile finishes, which may be just after the servers are back.
        await until(lambda: service.metrics.reconciles.labels("haproxy_restart")._value.get() >= 1, 10,
                    "the restart counted as a reconcile trigger")


async def test_malformed_events_are_counted_and_skipped(stack, zk_hosts, haproxy_backend, world):
    publisher, gateways = world
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment)) as service:
        await publisher.client.xadd(publisher.stream, {"event": "{not json"})
        await publisher.client.xadd(publisher.stream, {"event": '{"type": "instance.ready", "schema_version": "9.0"}'})
        await publisher.emit(ev.InstanceReady, 43001)
        await until(lambda: _eq(gateways.routed(), {addr(43001)}), 15, "the good event applied")
        await until(lambda: service.discovery.consumers[publisher.stream].stats.dead_lettered == 2, 5, "both counted")
        assert len(await publisher.client.xrange(ev.dead_letter_stream(publisher.stream))) == 2


async def _route(publisher, gateways, ports, message):
    """Announce instances ready on ``ports``; wait until both gateways route exactly them."""
    for port in ports:
        await publisher.emit(ev.InstanceReady, port)
    await until(lambda: _eq(gateways.routed(), {addr(p) for p in ports}), 15, message)


async def _eq(value, expected):
    return set(await value) == expected


async def _lacks(value, address):
    return address not in await value


async def _lacks_any(servers, address):
    return address not in {f"{s.ip}:{s.port}" for s in await servers}


async def test_events_are_applied_from_memory_and_only_the_reconcile_reads_servers_state(
        stack, zk_hosts, haproxy_backend, world, monkeypatch):
    publisher, gateways = world
    sent = []
    exchange = RuntimeApi._exchange

    async def counted(api, line):
        if api is not gateways.api:
            sent.append(line)
        return await exchange(api, line)

    monkeypatch.setattr(RuntimeApi, "_exchange", counted)
    ports = [44001 + i for i in range(8)]
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment,
                                       reconcile_interval_s=600.0)) as service:
        await until(lambda: service.control.last_reconcile is not None, 15, "the first reconcile")
        await _route(publisher, gateways, ports[:4], "first four routed")
        reads_before = sum(line.startswith("show servers state") for line in sent)
        for port in ports[4:]:
            await publisher.emit(ev.InstanceReady, port)
        await publisher.emit(ev.InstanceStopped, ports[0], exit_code=0)
        await until(lambda: _eq(gateways.routed(), {addr(p) for p in ports[1:]}), 15, "changes applied")
        assert sum(line.startswith("show servers state") for line in sent) == reads_before
        assert any("add server" in line for line in sent)


async def test_drift_made_by_hand_through_the_runtime_api_and_in_zookeeper_is_repaired_by_the_reconcile(
        stack, zk_hosts, haproxy_backend, world):
    publisher, gateways = world
    ports = [45001 + i for i in range(6)]
    backend = haproxy_backend["dyn"]["name"]
    await publisher.record(zk_hosts, backend)
    async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment,
                                       reconcile_interval_s=2.0)):
        await _route(publisher, gateways, ports, "routed")
        await publisher.snapshot(ports)  # authoritative: a server nobody asked for is removed
        names = await gateways.haproxy_ready()
        deleted, maint = names[addr(ports[0])], names[addr(ports[1])]
        for line in (f"set server {backend}/{deleted} state maint", f"del server {backend}/{deleted}",
                     f"set server {backend}/{maint} state maint", f"add server {backend}/tarn-stray 127.0.0.1:45999"):
            await gateways.api.execute(line)
        await asyncio.to_thread(gateways.zk.delete, f"{ZK_PATH}/{addr(ports[2])}")
        assert await gateways.routed() == {addr(p) for p in ports[3:]}
        await until(lambda: _eq(gateways.routed(), {addr(p) for p in ports}), 20, "drift repaired")
        await until(lambda: _lacks_any(gateways.haproxy_all(), "127.0.0.1:45999"), 10, "stray server removed")


async def test_a_znode_rewritten_by_hand_is_written_back_within_the_reconciles_that_verify_each_znode(
        stack, zk_hosts, haproxy_backend, world):
    publisher, gateways = world
    ports = [45101 + i for i in range(5)]
    await publisher.record(zk_hosts, haproxy_backend["dyn"]["name"])
    async with in_process(settings_for(stack, zk_hosts, deployment=publisher.deployment,
                                       reconcile_interval_s=1.0)):
        await _route(publisher, gateways, ports, "routed")
        wanted = await asyncio.to_thread(gateways.znodes)
        await asyncio.sleep(3.0)  # full reconciles since: it knows what it wrote, and reads a share of it
        for port in ports:  # behind gateway-sync's back: every znode's data replaced
            await asyncio.to_thread(gateways.zk.set, f"{ZK_PATH}/{addr(port)}", b'{"forged": true}')
        # Each reconcile reads a share of the znodes it wrote: all are read again within
        # VERIFY_ROUNDS reconciles, at least a second apart here.
        async def written_back() -> bool:
            return await asyncio.to_thread(gateways.znodes) == wanted

        await until(written_back, 3 * VERIFY_ROUNDS + 10, "forged znodes written back")


async def test_a_plan_goes_out_in_batches_of_commands_and_a_refusal_in_one_is_reported(stack, haproxy_backend):
    api, backend = RuntimeApi(haproxy_backend["socket"], check=False), haproxy_backend["dyn"]["name"]
    adds = [AddServer(f"tarn-batch-{i}", "127.0.0.2", 46000 + i) for i in range(300)]  # several requests' worth
    await api.apply(backend, adds)
    assert {s.name for s in await api.servers(backend)} >= {a.name for a in adds}
    with pytest.raises(HaproxyCommandError, match="No such server"):
        await api.apply(backend, [DrainServer("tarn-batch-0"), ReadyServer("tarn-nobody"), DrainServer("tarn-batch-1")])
    drained = {s.name for s in await api.servers(backend) if s.admin is Admin.DRAIN}
    assert {"tarn-batch-0", "tarn-batch-1"} <= drained


async def test_new_servers_take_the_ids_gateway_sync_chose_and_a_used_id_is_refused(stack, haproxy_backend):
    api, backend = RuntimeApi(haproxy_backend["socket"], check=False), haproxy_backend["dyn"]["name"]
    await api.apply(backend, [AddServer("tarn-chosen-1", "127.0.0.2", 47100, srv_id=9001),
                              AddServer("tarn-chosen-2", "127.0.0.2", 47101, srv_id=9002)])
    ids = {s.name: s.srv_id for s in await api.servers(backend)}
    assert (ids["tarn-chosen-1"], ids["tarn-chosen-2"]) == (9001, 9002)
    assert set(await api.sessions(backend, [ServerState("tarn-chosen-2", "127.0.0.2", 47101, Admin.DRAIN, False,
                                                        srv_id=9002)])) == {"tarn-chosen-2"}
    with pytest.raises(HaproxyCommandError, match="already used"):
        await api.apply(backend, [AddServer("tarn-chosen-3", "127.0.0.2", 47102, srv_id=9001)])


async def test_the_open_requests_of_draining_servers_are_read_one_server_each_by_haproxys_id(stack, haproxy_backend):
    api, backend = RuntimeApi(haproxy_backend["socket"], check=False), haproxy_backend["dyn"]["name"]
    await api.apply(backend, [AddServer(f"tarn-ids-{i}", "127.0.0.2", 47000 + i) for i in range(40)])
    await api.apply(backend, [DrainServer("tarn-ids-3"), DrainServer("tarn-ids-30")])
    servers = {s.name: s for s in await api.servers(backend) if s.name.startswith("tarn-ids-")}
    assert len({s.srv_id for s in servers.values()} - {None}) == 40  # every server's id, each its own
    draining = [servers["tarn-ids-3"], servers["tarn-ids-30"]]
    assert set(await api.sessions(backend, draining)) == {"tarn-ids-3", "tarn-ids-30"}
    assert set(await api.sessions(backend)) >= set(servers)  # without ids: the whole backend
