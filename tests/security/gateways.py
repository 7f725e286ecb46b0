"""Both enforcement points in front of one real tritonserver, for the path and LLM-endpoint tests:
HAProxy 2.6 with deploy/haproxy/tarn_authz.lua (basic auth) and a Knox 2.0.0 gateway with TARN's
extension (HeaderPreAuth from 127.0.0.1), both asking one tarn-authz process. Triton serves
tests/models plus tests/llm_models (the generate extension).

Requests go out on a raw socket: httpx removes dot segments and re-encodes, http.client refuses
spaces and non-ASCII, and these tests need the exact bytes a hostile client would send."""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import httpx
import pytest
from kazoo.client import KazooClient

from tests.knox.support import GATEWAY_TOKEN, RANGER_SERVICE, SERVICEDEF, USER_HEADER, AuthzProcess, KnoxGateway, \
    build_knox, topology
from tests.support.ports import free_port
from tests.support.scripts import load_script
from tests.support.stack_fixture import tarnstack
from tests.support.triton import TritonServer
from tests.support.triton_fixture import copy_model_repository

ROOT = Path(__file__).resolve().parents[2]
LLM_MODELS = ROOT / "tests" / "llm_models"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
TOPOLOGY = "tarn"


def _policy(pid: int, models: List[str], user: str, accesses: List[str]) -> Dict:
    return {"id": pid, "name": f"p{pid}", "isEnabled": True, "isAuditEnabled": True,
            "resources": {"model": {"values": models}},
            "policyItems": [{"users": [user], "accesses": [{"type": a, "isAllowed": True} for a in accesses]}]}


# alice may use identity and the LLMs. bob may not; he holds rights on names that only a gateway
# reading a path differently from Triton would turn into identity.
POLICIES = {"serviceName": RANGER_SERVICE, "policyVersion": 1, "serviceDef": SERVICEDEF, "policies": [
    _policy(1, ["identity", "text_echo", "text_stream"], "alice", ["infer", "metadata"]),
    _policy(2, ["x", "%69dentity", "identity;x=1", "IDENTITY", "identity%2Finfer"], "bob", ["infer", "metadata"]),
]}


@dataclass
class Answer:
    status: int
    body: bytes


def raw_request(port: int, method: str, target: str, headers: Dict[str, str], body: bytes = b"") -> Answer:
    """One HTTP/1.1 request whose request-target is sent byte for byte as given."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall("\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body)
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return Answer(int(head.split(b" ", 2)[1]), rest)


class Gateways:
    """Send one request through HAProxy, through Knox, or straight to Triton."""

    def __init__(self, triton: TritonServer, haproxy_port: int, knox_port: int) -> None:
        self.triton, self.haproxy_port, self.knox_port = triton, haproxy_port, knox_port

    def haproxy(self, user: str, method: str, target: str, body: bytes = b"") -> Answer:
        token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
        return raw_request(self.haproxy_port, method, target, {"Authorization": f"Basic {token}", **_json(body)}, body)

    def knox(self, user: str, method: str, target: str, body: bytes = b"") -> Answer:
        return raw_request(self.knox_port, method, f"/gateway/{TOPOLOGY}/triton{target}",
                           {USER_HEADER: user, **_json(body)}, body)

    def direct(self, method: str, target: str, body: bytes = b"") -> Answer:
        return raw_request(self.triton.ports.http, method, target, _json(body), body)

    def through(self, gateway: str, user: str, method: str, target: str, body: bytes = b"") -> Answer:
        return (self.haproxy if gateway == "haproxy" else self.knox)(user, method, target, body)


def _json(body: bytes) -> Dict[str, str]:
    return {"Content-Type": "application/json"} if body else {}


def _llm_repository(destination: Path) -> Path:
    copy_model_repository(destination)
    for model in LLM_MODELS.iterdir():
        if model.is_dir():
            shutil.copytree(model, destination / model.name, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def _start_haproxy(tmp: Path, port: int, authz_url: str, triton: TritonServer) -> subprocess.Popen:
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(load_script("deploy/haproxy/render_authz.py").render(
        run_dir=tmp, http_port=port, index_port=free_port(), authz_url=authz_url, gateway_token=GATEWAY_TOKEN,
        users=[f"user {u} insecure-password {p}" for u, p in PASSWORDS.items()],
        servers=[f"server triton1 {triton.http_host_port} check"], cache_ttl_s=1.0))
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(tmp / "haproxy.log", "ab")  # noqa: SIM115 - HAProxy writes to it until the fixture ends
    return subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="session")
def gateways(stack, tmp_path_factory) -> Iterator[Gateways]:
    build_knox()
    tmp = tmp_path_factory.mktemp("security-gateways")
    triton = TritonServer(_llm_repository(tmp / "models"), log_path=tmp / "tritonserver.log").start()
    authz = AuthzProcess(tmp / "authz", policies=POLICIES).start()
    zk = KazooClient(hosts=stack.env["ZK_HOSTS"])
    zk.start(timeout=15)
    namespace = f"/tarn-security-{uuid.uuid4().hex[:8]}/services/triton"
    host, port = triton.http_host_port.split(":")
    zk.create(f"{namespace}/instances/{triton.http_host_port}", json.dumps(
        {"url": triton.http_url, "host": host, "port": int(port), "container_id": "container_paths",
         "app_id": "application_1700000000000_0001", "models": ["identity"], "deployment": "paths"}).encode(),
        ephemeral=True, makepath=True)
    knox = KnoxGateway(tmp / "knox")
    haproxy_port = free_port()
    haproxy = _start_haproxy(tmp, haproxy_port, authz.url, triton)
    try:
        knox.prepare({TOPOLOGY: topology(stack.env["ZK_HOSTS"], namespace, authz.url)})
        knox.start(f"/{TOPOLOGY}/triton/v2/health/ready", {USER_HEADER: "alice"})

        def haproxy_ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{haproxy_port}/v2/health/ready", auth=("alice", PASSWORDS["alice"]),
                                 timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        tarnstack.wait_until(haproxy_ready, "haproxy with authz", tmp / "haproxy.log", haproxy)
        yield Gateways(triton, haproxy_port, knox.port)
    finally:
        tarnstack.stop_pid(haproxy.pid)
        knox.stop()
        zk.stop()
        zk.close()
        authz.stop()
        triton.stop()
