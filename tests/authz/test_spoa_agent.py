"""tarn-authz's SPOE agent on its unix socket, spoken to as HAProxy speaks SPOP (the frames built
with tarn_authz.spop), against the real app on the test policies: the handshake, pipelined
questions, hostile frames, and the socket as the trust boundary. HAProxy itself in front of it:
test_haproxy_pep, test_haproxy_decision_cache and test_gateway_audit (their "spoe" cases)."""
from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from tarn_authz import spop
from tarn_authz.app import SERVER_OPTIONS, create_app
from tarn_authz.spoa import bind_unix
from tarn_shared.errors import ConfigError
from tests.authz.servers import ServerThread
from tests.authz.support import GATEWAY_TOKEN, settings_for
from tests.authz.test_haproxy_pep import POLICIES
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration
HELLO = {"supported-versions": "2.0", "max-frame-size": 16380, "capabilities": "pipelining,async",
         "engine-id": "test-engine"}


class Spop:
    """One connection to the agent, as HAProxy would hold it."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frames(self, n: int) -> list:
        out: list = []
        while len(out) < n:
            out += spop.split_frames(self.buffer, 1 << 20)
            if len(out) >= n:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        return out

    def closed(self) -> bool:
        return self.sock.recv(1) == b""

    def hello(self, **changes) -> dict:
        self.send(spop.encode_frame(spop.HAPROXY_HELLO, spop.encode_kv_list({**HELLO, **changes})))
        (frame,) = self.frames(1)
        assert frame.type == spop.AGENT_HELLO, frame
        return spop.decode_kv_list(frame.payload)

    def __enter__(self) -> "Spop":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()


def notify(stream_id: int, frame_id: int, flags: int = spop.FLAG_FIN, message: str = "tarn-check", **args) -> bytes:
    payload = spop.encode_varint(len(message)) + message.encode() + bytes([len(args)]) + spop.encode_kv_list(args)
    return spop.encode_frame(spop.NOTIFY, payload, stream_id, frame_id, flags)


def variables(frame: spop.Frame) -> dict:
    """An ACK's set-var actions: {name: value} (all in the transaction scope)."""
    out, pos = {}, 0
    while pos < len(frame.payload):
        action, count, scope = frame.payload[pos:pos + 3]
        assert (action, count, scope) == (spop.ACTION_SET_VAR, 3, spop.SCOPE_TRANSACTION)
        name, pos = spop.decode_name(frame.payload, pos + 3)
        out[name], pos = spop.decode_typed(frame.payload, pos)
    return out


def disconnect_status(frame: spop.Frame) -> int:
    assert frame.type == spop.AGENT_DISCONNECT, frame
    return spop.decode_kv_list(frame.payload)["status-code"]


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spoa")
    (tmp / "policies").mkdir()
    (tmp / "policies" / "triton_prod.json").write_text(json.dumps(POLICIES))
    path = tmp / "spoa.sock"
    server = ServerThread(create_app(settings_for(tmp, spoa_socket=path)), **SERVER_OPTIONS).start()
    yield path, server
    server.stop()


@pytest.fixture
def own_agent(tmp_path):
    """An authz of the test's own: (socket path, server, policy file)."""
    (tmp_path / "policies").mkdir()
    policy_file = tmp_path / "policies" / "triton_prod.json"
    policy_file.write_text(json.dumps(POLICIES))
    path = tmp_path / "spoa.sock"
    server = ServerThread(create_app(settings_for(tmp_path, spoa_socket=path)), **SERVER_OPTIONS).start()
    yield path, server, policy_file
    server.stop()


def test_the_hello_answers_spop_2_the_smaller_frame_size_and_pipelining(agent):
    with Spop(agent[0]) as conn:
        assert conn.hello() == {"version": "2.0", "max-frame-size": 16380, "capabilities": "pipelining"}


def test_a_health_check_hello_is_answered_and_the_connection_closed(agent):
    with Spop(agent[0]) as conn:
        conn.hello(healthcheck=True)
        assert conn.closed()


def test_pipelined_questions_are_each_acknowledged_with_the_decision_under_their_ids(agent):
    with Spop(agent[0]) as conn:
        conn.hello()
        client = ipaddress.ip_address("10.9.8.7")
        conn.send(notify(1, 1, user="alice", action="infer", model="add_sub", client=client)
                  + notify(2, 1, user="bob", action="infer", model="add_sub", client=client)
                  + notify(3, 5, user="alice", action="delete", model="add_sub", client=client)
                  + notify(4, 1, user="alice", action="infer", model="add_sub", service="no_such_service")
                  + notify(5, 1, message="someone-elses", user="alice")
                  + notify(6, 1, action="infer", model="add_sub"))
        acks = conn.frames(6)
        assert [(f.type, f.stream_id, f.frame_id) for f in acks] == \
            [(spop.ACK, 1, 1), (spop.ACK, 2, 1), (spop.ACK, 3, 5), (spop.ACK, 4, 1), (spop.ACK, 5, 1), (spop.ACK, 6, 1)]
        answers = [variables(f) for f in acks]
        assert answers[0] == {"allowed": True}
        assert answers[1] == {"reason": "no policy matched: denied", "allowed": False}
        assert answers[2]["allowed"] is False and "unknown action 'delete'" in answers[2]["reason"]
        assert answers[3] == {"reason": "not serving Ranger service 'no_such_service'"}  # no answer: HAProxy's 503
        assert answers[4] == {}  # a message it does not know: acknowledged, nothing set
        assert answers[5] == {"reason": "bad question: `user` missing", "allowed": False}


@pytest.mark.parametrize("send, status", [
    (notify(1, 1, user="alice", action="infer", model="add_sub"), spop.INVALID),  # a question before the hello
    (spop.LENGTH.pack(1 << 20) + b"\x03", spop.TOO_BIG),
    (spop.LENGTH.pack(3) + b"\x01\x00\x00", spop.INVALID),
    (spop.encode_frame(spop.HAPROXY_HELLO, spop.encode_kv_list({**HELLO, "supported-versions": "1.0"})),
     spop.BAD_VERSION),
])
def test_a_hostile_or_broken_peer_is_told_why_and_disconnected(agent, send, status):
    with Spop(agent[0]) as conn:
        conn.send(send)
        (frame,) = conn.frames(1)
        assert disconnect_status(frame) == status
        assert conn.closed()


@pytest.mark.parametrize("send, status", [
    (notify(1, 1, flags=0, user="alice"), spop.NO_FRAGMENTATION),
    (notify(1, 1, flags=spop.FLAG_FIN | spop.FLAG_ABORT, user="alice"), spop.NO_FRAGMENTATION),
    (spop.encode_frame(spop.NOTIFY, b"\x05ab"), spop.INVALID),
    (spop.encode_frame(spop.NOTIFY, spop.encode_varint(10) + b"tarn-check" + bytes([1, 4]) + b"user" + b"\x0a"),
     spop.INVALID),
    (spop.encode_frame(spop.HAPROXY_HELLO, spop.encode_kv_list(HELLO)), spop.INVALID),  # a second hello
    (spop.encode_frame(spop.ACK, b""), spop.INVALID),
])
def test_a_bad_frame_after_the_hello_is_told_why_and_disconnected(agent, send, status):
    with Spop(agent[0]) as conn:
        conn.hello()
        conn.send(send)
        (frame,) = conn.frames(1)
        assert disconnect_status(frame) == status
        assert conn.closed()


def test_a_frame_arriving_byte_by_byte_is_answered_and_unknown_frame_types_are_skipped(agent):
    with Spop(agent[0]) as conn:
        conn.hello()
        data = spop.encode_frame(50, b"whatever") + notify(9, 3, user="alice", action="infer", model="add_sub")
        for i in range(len(data)):
            conn.send(data[i:i + 1])
        (ack,) = conn.frames(1)
        assert (ack.type, ack.stream_id, ack.frame_id, variables(ack)["allowed"]) == (spop.ACK, 9, 3, True)


def test_a_peer_that_never_reads_its_answers_is_not_read_from_and_others_are_still_answered(agent):
    question = notify(1, 1, user="alice", action="infer", model="add_sub") * 100
    with Spop(agent[0]) as greedy, Spop(agent[0]) as other:
        greedy.hello()
        greedy.sock.setblocking(False)
        sent = 0
        for _ in range(20):  # send until the socket is full, and still full after a pause
            with contextlib.suppress(BlockingIOError):
                while True:
                    sent += greedy.sock.send(question)
            time.sleep(0.5)  # an agent still reading empties the socket meanwhile
            try:
                sent += greedy.sock.send(question)
            except BlockingIOError:
                break
        else:
            pytest.fail(f"the agent kept reading from a peer that reads nothing ({sent} bytes)")
        assert sent < 10_000_000
        other.hello()
        other.send(notify(2, 1, user="alice", action="infer", model="add_sub"))
        assert variables(other.frames(1)[0]) == {"allowed": True}


def test_haproxys_disconnect_is_answered_and_counted(agent):
    path, server = agent
    with Spop(path) as conn:
        conn.hello()
        conn.send(spop.encode_frame(spop.HAPROXY_DISCONNECT, spop.encode_kv_list({"status-code": 0, "message": ""})))
        (frame,) = conn.frames(1)
        assert disconnect_status(frame) == spop.NORMAL
        assert conn.closed()
    metrics = httpx.get(f"{server.url}/metrics", headers={"X-TARN-Token": GATEWAY_TOKEN}).text
    assert 'tarn_authz_spoa_disconnects_total{reason="normal"}' in metrics
    assert 'tarn_authz_spoa_disconnects_total{reason="invalid"}' in metrics  # from the hostile peers above


def test_a_repeated_question_is_decided_anew_each_time_so_a_policy_change_applies_at_once(own_agent):
    path, server, policy_file = own_agent
    question = notify(1, 1, user="alice", action="infer", model="add_sub", client=ipaddress.ip_address("10.0.0.1"))
    with Spop(path) as conn:
        conn.hello()
        for _ in range(3):
            conn.send(question)
            assert variables(conn.frames(1)[0]) == {"allowed": True}
        metrics = httpx.get(f"{server.url}/metrics", headers={"X-TARN-Token": GATEWAY_TOKEN}).text
        assert 'tarn_authz_decisions_total{result="allowed",service="triton_prod"} 3.0' in metrics
        policy_file.write_text(json.dumps({**POLICIES, "policyVersion": 2, "policies": POLICIES["policies"][1:]}))
        wait_for(lambda: httpx.get(f"{server.url}/healthz").json()["services"]["triton_prod"]["policy_version"] == 2,
                 30, "policy version 2 loaded")
        conn.send(question)  # the very same bytes: read before, decided now
        assert variables(conn.frames(1)[0]) == {"reason": "no policy matched: denied", "allowed": False}


def test_the_socket_admits_its_owner_and_group_only(agent):
    assert stat.S_IMODE(agent[0].stat().st_mode) == 0o660


def test_a_stale_socket_is_replaced_and_a_live_one_or_a_file_is_refused(tmp_path):
    path = tmp_path / "spoa.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # left behind by an agent that stopped without cleaning up
    live = bind_unix(path)
    try:
        with pytest.raises(ConfigError, match="another agent is listening"):
            bind_unix(path)
    finally:
        live.close()
    (tmp_path / "file").write_text("not a socket")
    with pytest.raises(ConfigError, match="not a socket"):
        bind_unix(tmp_path / "file")
    with pytest.raises(ConfigError, match="does not exist"):
        bind_unix(tmp_path / "no-such-folder" / "spoa.sock")


def test_stopping_authz_tells_haproxys_connections_and_removes_the_socket(own_agent):
    path, server, _ = own_agent
    with Spop(path) as conn:
        conn.hello()
        server.stop()
        (frame,) = conn.frames(1)
        assert disconnect_status(frame) == spop.NORMAL
        assert conn.closed()
        assert not path.exists()
