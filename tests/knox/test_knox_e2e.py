"""Through a real Knox gateway (org.apache.knox:gateway-release 2.0.0 from Maven Central) with
TARN's extension (deploy/knox): tritonclient reaches real tritonservers discovered in the real
ZooKeeper, a denied user gets 403, an instance whose znode goes stops receiving requests, and
authz down gives 503. HeaderPreAuth, trusted from 127.0.0.1 only, stands in for LDAP/Kerberos.

Knox starts once for the module. Znodes are written as tarn-gateway-sync writes them: ephemeral,
named host:port, JSON with url, host, port, container_id, app_id, models."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Dict, List, Tuple

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from kazoo.client import KazooClient
from tritonclient.utils import InferenceServerException

from tests.knox.support import GROUPS_HEADER, USER_HEADER, AuthzProcess, KnoxGateway, build_knox, topology
from tests.support.ports import free_port
from tests.support.triton import TritonServer
from tests.support.triton_fixture import copy_model_repository

pytestmark = pytest.mark.integration
TOPOLOGY = "tarn"
CACHE_TTL_MS = 1000


def znode_record(server: TritonServer, container_id: str, models: Tuple[str, ...] = ("add_sub", "identity")) -> bytes:
    host, port = server.http_host_port.split(":")
    return json.dumps({"url": server.http_url, "host": host, "port": int(port), "grpc_port": server.ports.grpc,
                       "metrics_port": server.ports.metrics, "container_id": container_id,
                       "app_id": "application_1700000000000_0001", "models": list(models),
                       "deployment": "knox-e2e"}, sort_keys=True, separators=(",", ":")).encode()


class Fleet:
    """Two real tritonservers, registered in ZooKeeper as gateway-sync would; Knox in front."""

    def __init__(self, knox: KnoxGateway, authz: AuthzProcess, zk: KazooClient, instances_path: str,
                 servers: Dict[str, TritonServer]) -> None:
        self.knox, self.authz, self.zk, self.instances_path, self.servers = knox, authz, zk, instances_path, servers

    @property
    def triton_url(self) -> str:
        return f"{self.knox.url}/{TOPOLOGY}/triton"

    def register(self, name: str) -> float:
        server = self.servers[name]
        self.zk.create(f"{self.instances_path}/{server.http_host_port}", znode_record(server, f"container_{name}"),
                       ephemeral=True, makepath=True)
        return time.monotonic()

    def unregister(self, name: str) -> float:
        self.zk.delete(f"{self.instances_path}/{self.servers[name].http_host_port}")
        return time.monotonic()

    def call(self, method: str, path: str, user=None, groups=None, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if user:
            headers[USER_HEADER] = user
        if groups:
            headers[GROUPS_HEADER] = groups
        return httpx.request(method, self.triton_url + path, headers=headers, timeout=60, **kwargs)

    def client(self, user: str, groups: str = "") -> "UserClient":
        return UserClient(self.triton_url.split("://", 1)[1], user, groups)


class UserClient:
    """tritonclient's HTTP client, pointed at Knox, sending the identity HeaderPreAuth reads."""

    def __init__(self, url: str, user: str, groups: str) -> None:
        self.client = httpclient.InferenceServerClient(url=url, network_timeout=60)
        self.headers = {USER_HEADER: user, **({GROUPS_HEADER: groups} if groups else {})}

    def add_sub(self, a: List[float], b: List[float]):
        inputs = []
        for name, values in (("INPUT0", a), ("INPUT1", b)):
            tensor = httpclient.InferInput(name, [4], "FP32")
            tensor.set_data_from_numpy(np.array(values, dtype=np.float32))
            inputs.append(tensor)
        return self.client.infer("add_sub", inputs, headers=self.headers)

    def identity(self, values: List[float]):
        tensor = httpclient.InferInput("INPUT0", [len(values)], "FP32")
        tensor.set_data_from_numpy(np.array(values, dtype=np.float32))
        return self.client.infer("identity", [tensor], headers=self.headers)


def inference_count(server: TritonServer, model: str = "identity") -> int:
    stats = httpx.get(f"{server.http_url}/v2/models/{model}/stats", timeout=10).json()
    return sum(s["inference_stats"]["success"]["count"] for s in stats["model_stats"])


@pytest.fixture(scope="module")
def fleet(stack, triton_server, tmp_path_factory):
    build_knox()
    tmp = tmp_path_factory.mktemp("knox-e2e")
    second = TritonServer(copy_model_repository(tmp / "models"), log_path=tmp / "tritonserver-b.log").start()
    authz = AuthzProcess(tmp / "authz").start()
    zk = KazooClient(hosts=stack.env["ZK_HOSTS"])
    zk.start(timeout=15)
    base = f"/tarn-knox-e2e-{uuid.uuid4().hex[:8]}"
    namespace = f"{base}/services/triton"  # the seeds' namespace; instances under <namespace>/instances
    knox = KnoxGateway(tmp / "knox")
    fleet = Fleet(knox, authz, zk, f"{namespace}/instances", {"a": triton_server, "b": second})
    try:
        fleet.register("a")
        fleet.register("b")
        knox.prepare({TOPOLOGY: topology(stack.env["ZK_HOSTS"], namespace, authz.url, cache_ttl_ms=CACHE_TTL_MS)})
        knox.start(f"/{TOPOLOGY}/triton/v2/health/ready", {USER_HEADER: "alice"})
        print(f"\nKnox gateway started in {knox.startup_s:.1f} s")
        yield fleet
    finally:
        knox.stop()
        authz.stop()
        zk.delete(base, recursive=True)
        zk.stop()
        zk.close()
        second.stop()


def test_tritonclient_through_knox_reaches_tritonserver(fleet):
    alice = fleet.client("alice")
    assert alice.client.is_server_ready(headers=alice.headers)
    assert alice.client.get_model_metadata("add_sub", headers=alice.headers)["name"] == "add_sub"
    result = alice.add_sub([1, 2, 3, 4], [4, 3, 2, 1])
    assert result.as_numpy("OUTPUT0").tolist() == [5, 5, 5, 5]
    assert result.as_numpy("OUTPUT1").tolist() == [-3, -1, 1, 3]


def test_a_denied_user_gets_403(fleet):
    with pytest.raises(InferenceServerException) as denied:
        fleet.client("mallory").add_sub([1, 2, 3, 4], [1, 1, 1, 1])
    assert "403" in str(denied.value.status()) or "forbidden" in str(denied.value).lower()
    assert fleet.call("POST", "/v2/models/add_sub/infer", "mallory", json={}).status_code == 403
    assert fleet.call("POST", "/v2/models/identity/infer", "alice", json={}).status_code == 403
    assert fleet.call("GET", "/v2/models/add_sub/stats", "alice").status_code == 403  # unmapped: denied
    assert fleet.call("GET", "/v2/health/ready").status_code in (401, 403)  # nobody authenticated


def test_groups_reach_authz(fleet):
    assert fleet.client("dave", "staff,analysts").identity([1.5, 2.5]).as_numpy("OUTPUT0").tolist() == [1.5, 2.5]
    assert fleet.call("POST", "/v2/models/identity/infer", "dave", "staff", json={}).status_code == 403


def test_repository_index_lists_only_what_the_user_may_list(fleet):
    def names(user: str) -> List[str]:
        response = fleet.call("POST", "/v2/repository/index", user, json={})
        assert response.status_code == 200, response.text
        return sorted(entry["name"] for entry in response.json())

    assert names("carol") == ["add_sub", "identity"]
    assert names("alice") == ["add_sub"]
    assert names("mallory") == []


def test_requests_are_balanced_across_live_instances(fleet):
    before = {name: inference_count(server) for name, server in fleet.servers.items()}
    bob = fleet.client("bob")
    for _ in range(6):
        bob.identity([1.0])
    gained = {name: inference_count(server) - before[name] for name, server in fleet.servers.items()}
    assert gained == {"a": 3, "b": 3}


def test_a_model_goes_only_to_the_instances_whose_znodes_list_it(fleet):
    """Per-model placement: instance a announces that it holds add_sub only (its znode's models)."""
    a = fleet.servers["a"]
    path = f"{fleet.instances_path}/{a.http_host_port}"
    fleet.zk.set(path, znode_record(a, "container_a", ("add_sub",)))
    bob, alice = fleet.client("bob"), fleet.client("alice")
    try:
        def identity_gains(count: int) -> Dict[str, int]:
            before = {name: inference_count(server) for name, server in fleet.servers.items()}
            for _ in range(count):
                bob.identity([4.0])
            return {name: inference_count(server) - before[name] for name, server in fleet.servers.items()}

        deadline = time.monotonic() + 10
        while identity_gains(6) != {"a": 0, "b": 6}:
            assert time.monotonic() < deadline, "Knox kept sending identity to an instance without it"
        before = {name: inference_count(server, "add_sub") for name, server in fleet.servers.items()}
        for _ in range(6):
            alice.add_sub([1, 2, 3, 4], [1, 1, 1, 1])
        gained = {name: inference_count(server, "add_sub") - before[name] for name, server in fleet.servers.items()}
        assert gained["a"] > 0 and gained["b"] > 0, f"add_sub, held by both, is still balanced: {gained}"
    finally:
        fleet.zk.set(path, znode_record(a, "container_a"))


def _routed_to_b(fleet, bob: UserClient) -> bool:
    before = inference_count(fleet.servers["b"])
    bob.identity([2.0])
    return inference_count(fleet.servers["b"]) > before


def test_an_instance_removed_from_zookeeper_stops_receiving_requests(fleet):
    bob = fleet.client("bob")
    removed_at = fleet.unregister("b")
    try:
        b_before = inference_count(fleet.servers["b"])
        first = time.monotonic()
        for _ in range(10):
            bob.identity([3.0])
        assert inference_count(fleet.servers["b"]) == b_before, "Knox kept routing to the removed instance"
        assert inference_count(fleet.servers["a"]) > 0
        print(f"\nfirst request after the delete started {(first - removed_at) * 1000:.0f} ms after it; "
              "none of the next 10 reached the removed instance")
    finally:
        added_at = fleet.register("b")
    while not _routed_to_b(fleet, bob):
        assert time.monotonic() < added_at + 10, "Knox did not route to the re-registered instance"


def _knox_saw(fleet, offset: int, expected: List[str]) -> Tuple[float, int]:
    """The gateway.log time at which the URL manager published ``expected``, and the new offset."""
    wanted = f"TRITON instances under {fleet.instances_path.rsplit('/', 1)[0]}: [{', '.join(expected)}]"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(fleet.knox.log_path, "rb") as log:
            log.seek(offset)
            chunk = log.read().decode(errors="replace")
        for line in chunk.splitlines():
            if wanted in line:
                stamp = datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S,%f").timestamp()
                return stamp, offset + len(chunk.encode())
        time.sleep(0.005)
    raise AssertionError(f"Knox never logged {wanted!r}")


def test_znode_changes_reach_knox_routing_within_a_second(fleet):
    """Wall-clock time from the znode write to Knox's URL manager publishing the new list (its
    log line, ms resolution); each change is then checked through Knox by the tests above."""
    a, b = (fleet.servers[n].http_url for n in ("a", "b"))
    removals, additions = [], []
    for _ in range(10):
        offset = fleet.knox.log_path.stat().st_size
        before = time.time()
        fleet.unregister("b")
        seen, offset = _knox_saw(fleet, offset, [a])
        removals.append((seen - before) * 1000)
        before = time.time()
        fleet.register("b")
        seen, offset = _knox_saw(fleet, offset, sorted([a, b]))
        additions.append((seen - before) * 1000)
    removals.sort()
    additions.sort()
    print(f"\nznode change to Knox routing (ms, 10 each): removal median {removals[5]:.0f} max {removals[-1]:.0f}; "
          f"addition median {additions[5]:.0f} max {additions[-1]:.0f}")
    assert removals[-1] < 1000 and additions[-1] < 1000


def test_a_registered_but_dead_instance_is_failed_over_and_passed_over(fleet):
    dead = f"127.0.0.1:{free_port()}"
    fleet.zk.create(f"{fleet.instances_path}/{dead}", json.dumps({"url": f"http://{dead}"}).encode(), ephemeral=True)
    try:
        time.sleep(0.3)
        bob = fleet.client("bob")
        for _ in range(6):  # Knox fails over from the dead one; the URL manager then skips it
            assert bob.identity([5.0]).as_numpy("OUTPUT0").tolist() == [5.0]
    finally:
        fleet.zk.delete(f"{fleet.instances_path}/{dead}")


def test_with_no_live_instance_knox_answers_an_error_not_a_stale_backend(fleet):
    fleet.unregister("a")
    fleet.unregister("b")
    try:
        time.sleep(0.5)
        response = fleet.call("POST", "/v2/models/identity/infer", "bob", json={})
        print(f"\nno live instance: Knox answered {response.status_code}")
        assert response.status_code >= 500
    finally:
        fleet.register("a")
        fleet.register("b")
    time.sleep(0.5)
    assert fleet.client("bob").identity([4.0]).as_numpy("OUTPUT0").tolist() == [4.0]


def test_authz_down_gives_503_and_recovers(fleet):
    fleet.authz.stop()
    try:
        time.sleep(CACHE_TTL_MS / 1000 + 0.3)  # let cached decisions expire
        response = fleet.call("POST", "/v2/models/add_sub/infer", "alice", json={})
        assert response.status_code == 503, response.text
        assert fleet.call("POST", "/v2/repository/index", "carol", json={}).status_code == 503
        assert fleet.call("GET", "/v2/health/ready", "alice").status_code == 200  # no model right needed
    finally:
        fleet.authz.start()
    assert fleet.client("alice").add_sub([1, 1, 1, 1], [1, 1, 1, 1]).as_numpy("OUTPUT0").tolist() == [2, 2, 2, 2]
