"""Two per-model deployments side by side behind one real HAProxy 2.6, one gateway-sync serving
both (real Redis and ZooKeeper; real HTTP servers standing in for the instances, saying which
port answered): each backend's model slots and map hold only its own deployment's copies, a
model of the same name in both stays apart, and one deployment's unload or removal leaves the
other's routing untouched."""
from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import List

import httpx
import pytest

from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_shared import events as ev
from tarn_shared.deployments import put_record, read_records, remove_record
from tests.support.model_haproxy import ModelHaproxy

from .support import EventPublisher, in_process, settings_for, until
from .test_model_routing_haproxy import instances  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
FIRST, SECOND = "triton_backend", "triton_backend_b"


async def test_two_deployments_models_of_the_same_name_stay_on_their_own_backends(stack, redis_url, deployment,
                                                                                     zk_hosts, tmp_path, instances):
    haproxy = ModelHaproxy(tmp_path, [FIRST, SECOND], slots=2).start()
    other = f"t{uuid.uuid4().hex[:12]}"
    one, two = instances.ports
    await instances.wait_ready()
    publishers = {deployment: EventPublisher(redis_url, deployment, "application_1_0001"),
                  other: EventPublisher(redis_url, other, "application_1_0002")}

    async def ready(name: str, port: int, models: List[str]) -> None:
        p = publishers[name]
        p.seq[port] = p.seq.get(port, 0) + 1
        await p.publisher.publish(p.stream, ev.InstanceReady(
            deployment=name, app_id=p.app_id, instance_id=f"container_{port}", seq=p.seq[port],
            endpoints=ev.Endpoints(host="127.0.0.1", http_port=port), models=models))

    async def answered(backend: str, model: str, tries: int = 8) -> Counter:
        seen: Counter = Counter()
        async with httpx.AsyncClient(base_url=haproxy.url(backend), timeout=5.0) as client:
            for _ in range(tries):
                response = await client.post(f"/v2/models/{model}/infer", json={})
                seen[response.json()["port"] if response.status_code == 200 else response.status_code] += 1
        return seen

    async def settled(backend: str, model: str, expected: dict) -> bool:
        return await answered(backend, model) == Counter(expected)

    async def emptied(backend: str) -> bool:
        slots = [await RuntimeApi(haproxy.socket).servers(f"{backend}_model_{n}") for n in range(2)]
        return not haproxy.slots(backend) and not any(slots)

    try:
        for name, backend, path in ((deployment, FIRST, "/services/triton/a"), (other, SECOND, "/services/triton/b")):
            await put_record(publishers[name].client, ev.DeploymentRecord(
                deployment=name, app_id=publishers[name].app_id, zk_ensemble=zk_hosts, zk_path=path,
                haproxy_backend=backend))
        settings = settings_for(stack, zk_hosts, deployments=[deployment, other], haproxy_sockets=[haproxy.socket],
                                allowed_backends=[FIRST, SECOND], reconcile_interval_s=2.0)
        async with in_process(settings):
            await ready(deployment, one, ["A"])
            await ready(other, two, ["A", "B"])  # the same model name in the other deployment
            await until(lambda: settled(FIRST, "A", {one: 8}), 20, "the first backend's A on its own instance")
            await until(lambda: settled(SECOND, "A", {two: 8}), 20, "the second backend's A on its own instance")
            assert await answered(SECOND, "B") == Counter({two: 8})
            assert "B" not in haproxy.slots(FIRST), haproxy.dump()

            await ready(other, two, ["B"])  # the other deployment unloads A: the first's A is untouched
            await until(lambda: settled(SECOND, "A", {503: 8}), 20, "the second backend's A with no copy")
            assert await answered(FIRST, "A") == Counter({one: 8})

            # The other deployment is removed: its slots and map are emptied, the first's stay.
            record = (await read_records(publishers[other].client))[other]
            await remove_record(publishers[other].client, record)
            await until(lambda: emptied(SECOND), 20, "the removed deployment's slots and map emptied")
            assert await answered(FIRST, "A") == Counter({one: 8})
            assert await asyncio.to_thread(haproxy.serving, "A", FIRST) == [f"127.0.0.1:{one}"], haproxy.dump()
    finally:
        for p in publishers.values():
            await p.close()
        haproxy.stop()
