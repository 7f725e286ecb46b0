"""Per-model routing through a real HAProxy 2.6 (rendered with deploy/haproxy/render_model_routes.py),
real Redis and ZooKeeper, and two real HTTP servers standing in for the instances (they say
which port answered): a model's requests reach only the instances holding it READY, and
follow its copies as the instances' ready announcements change, also across an HAProxy restart."""
from __future__ import annotations

from collections import Counter
from typing import List

import httpx
import pytest

from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_shared import events as ev
from tarn_shared.deployments import read_records, remove_record
from tests.support.model_haproxy import BACKEND, ModelHaproxy

from .support import Backends, EventPublisher, Gateways, in_process, settings_for, until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def model_haproxy(stack, tmp_path):
    haproxy = ModelHaproxy(tmp_path, slots=3).start()
    try:
        yield haproxy.socket, haproxy.url(), haproxy.map_file(), haproxy.start
    finally:
        haproxy.stop()


@pytest.fixture
def instances():
    backends = Backends(2)
    try:
        yield backends
    finally:
        backends.stop()


async def test_a_models_requests_reach_only_the_instances_holding_it(stack, redis_url, deployment, zk_hosts,
                                                                      model_haproxy, instances):
    socket_path, url, map_file, restart_haproxy = model_haproxy
    one, two = instances.ports
    await instances.wait_ready()
    publisher = EventPublisher(redis_url, deployment)
    seq = {one: 0, two: 0}

    async def ready(port: int, models: List[str]) -> None:
        seq[port] += 1
        await publisher.publisher.publish(publisher.stream, ev.InstanceReady(
            deployment=deployment, app_id=publisher.app_id, instance_id=f"container_{port}", seq=seq[port],
            endpoints=ev.Endpoints(host="127.0.0.1", http_port=port), models=models))

    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        async def answered(model: str, tries: int = 12) -> Counter:
            """Which port answered each of ``tries`` requests for ``model`` (a status for the others)."""
            seen: Counter = Counter()
            for _ in range(tries):
                response = await client.post(f"/v2/models/{model}/infer", json={})
                seen[response.json()["port"] if response.status_code == 200 else response.status_code] += 1
            return seen

        try:
            await publisher.record(zk_hosts, BACKEND)
            settings = settings_for(stack, zk_hosts, deployment=deployment, haproxy_sockets=[socket_path],
                                    allowed_backends=[BACKEND], reconcile_interval_s=2.0)
            async with in_process(settings):
                await ready(one, ["A"])
                await ready(two, ["B"])
                await until(lambda: _is(answered("A"), {one: 12}), 20, "A served by instance 1 only")
                assert await answered("B") == Counter({two: 12})
                # The rest (index, health, a model never loaded) goes to every instance.
                ports = {(await client.get("/v2/models/never/ready")).json()["port"] for _ in range(6)}
                assert ports == {one, two}

                await ready(two, ["A", "B"])  # A loaded on instance 2 as well
                await until(lambda: _is(answered("A"), {one: 6, two: 6}), 20, "A served by both")
                assert await answered("B") == Counter({two: 12})
                gateways = Gateways(socket_path, BACKEND, zk_hosts)
                try:  # the znodes carry each instance's models, for Knox
                    assert gateways.znodes()[f"127.0.0.1:{two}"]["models"] == ["A", "B"]
                finally:
                    gateways.close()

                restart_haproxy()  # servers and map entries are gone: the restart watch puts them back
                await until(lambda: _is(answered("A"), {one: 6, two: 6}), 20, "A served by both after a restart")

                await ready(two, ["A"])  # B unloaded: no copy left, its requests get 503, not another model's
                await until(lambda: _is(answered("B"), {503: 12}), 20, "B answered 503 with no copy")
                assert await answered("A") == Counter({one: 6, two: 6})
                # Route away before unload: gateway-sync confirms B is out of instance 2's routes.
                unrouted = await until(lambda: _model_unrouted(publisher), 20, "model.unrouted for B")
                assert [(e.instance_id, e.model, e.seq, e.open_requests) for e in unrouted] == [
                    (f"container_{two}", "B", seq[two], 0)]

                api = RuntimeApi(socket_path)
                assert await _map_keys(api, map_file) == {"A", "B"}

                # The deployment stops: its slot backends and map entries are cleaned with its backend.
                record = (await read_records(publisher.client))[deployment]
                await remove_record(publisher.client, record)

                async def cleaned() -> bool:
                    slots = [await api.servers(f"{BACKEND}_model_{n}") for n in range(3)]
                    return not any(slots) and not await _map_keys(api, map_file)
                await until(cleaned, 20, "the slot backends and the map emptied")
        finally:
            await publisher.close()


async def _model_unrouted(publisher: EventPublisher) -> list:
    entries = await publisher.client.xrange(publisher.stream)
    return [e for e in (ev.decode(fields) for _, fields in entries) if isinstance(e, ev.ModelUnrouted)]


async def _map_keys(api: RuntimeApi, map_file: str) -> set:
    return {line.split()[1] for line in (await api.command(f"show map {map_file}")).splitlines() if line.strip()}


async def _is(counted, expected: dict) -> bool:
    return await counted == Counter(expected)
