"""The SPOE agent: HAProxy asks its access questions over SPOP (spop.py) on a unix socket, the
miss path of haproxy-authz.cfg.tmpl when rendered with --authz-spoa-socket. Each question is
one small frame answered as it arrives, on connections HAProxy keeps open, so a decision costs
no HTTP request (bench/pep: several times the misses per second of the Lua action's HTTP).

SPOP has no credentials: the socket's file mode (0660) is the trust boundary, and whoever may
connect is a trusted gateway naming the user, as with the gateway token over HTTP. A question
is the message ``tarn-check`` with the string arguments user, action and model (optional
service and deployment, as /authorize) and the client's address; the answer sets the
transaction variables ``allowed`` (bool) and, on a deny, ``reason`` (string). A question authz
cannot answer (no such service, an internal error) sets only ``reason``, which the
configuration turns into 503: it fails closed, as when the agent is down."""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple, cast

from tarn_shared.errors import ConfigError

from . import spop
from .api import MAX_MODEL
from .decision_metrics import AuthzMetrics
from .decisions import SCOPE_SELF, Decider, UnknownAction
from .identity import MAX_NAME, Identity
from .registry import PolicyRegistry

MESSAGE = "tarn-check"
MAX_FRAME_SIZE = 16384
READ_MAX, READ_MAX_BYTES = 10_000, 2048  # questions kept read: 20 MB at most
SOCKET_MODE = 0o660
Variables = List[Tuple[int, str, spop.Value]]
_ADDRESSES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
ALLOWED = spop.encode_set_vars([(spop.SCOPE_TRANSACTION, "allowed", True)])  # encoded once: most answers

log = logging.getLogger(__name__)


def _answer(allowed: Optional[bool], reason: str) -> bytes:
    """The ACK's actions; a deny or a question not answered carries its reason (an allow needs none)."""
    if allowed:
        return ALLOWED
    out: Variables = [(spop.SCOPE_TRANSACTION, "reason", reason)]
    if allowed is not None:
        out.append((spop.SCOPE_TRANSACTION, "allowed", allowed))
    return spop.encode_set_vars(out)


def read_question(args: dict) -> Tuple[Optional[tuple], str]:
    """((user, action, model, service, deployment, client) or None, why not): a malformed
    question is denied, as /authorize's 400 is by the Lua action."""
    values = []
    for name, limit in (("user", MAX_NAME), ("action", 64), ("model", MAX_MODEL)):
        value = args.get(name)
        if not isinstance(value, str) or not value.strip():
            return None, f"bad question: `{name}` missing"
        if len(value) > limit:
            return None, f"bad question: `{name}` longer than {limit} characters"
        values.append(value.strip() if name == "user" else value)
    for name in ("service", "deployment"):
        value = args.get(name)
        values.append(value if isinstance(value, str) and 0 < len(value) <= 255 else None)
    client = args.get("client")
    if isinstance(client, str):
        try:
            client = ipaddress.ip_address(client)
        except ValueError:
            client = None
    values.append(str(client) if isinstance(client, _ADDRESSES) else None)
    return tuple(values), ""


NO_QUESTION = (None, "")  # a NOTIFY without a tarn-check message: acknowledged with no actions


def read_notify(payload: bytes) -> Tuple[Optional[tuple], str]:
    """read_question of the NOTIFY's tarn-check message (the last, if several); NO_QUESTION without one."""
    read = NO_QUESTION
    for name, args in spop.decode_messages(payload):
        if name == MESSAGE:
            read = read_question(args)
    return read


class SpoaAgent:
    """Answers tarn-check messages from the served policies; owns the listening socket."""

    def __init__(self, registry: PolicyRegistry, decider: Decider, metrics: AuthzMetrics) -> None:
        self._registry = registry
        self._decider = decider
        self.metrics = metrics
        self._server: Optional[asyncio.AbstractServer] = None
        self._path: Optional[Path] = None
        self.connections: Set["SpoaConnection"] = set()
        self._read: Dict[bytes, Tuple[Optional[tuple], str]] = {}

    def answer(self, payload: bytes) -> bytes:
        """The ACK's actions for a NOTIFY's payload. The same client asking the same question sends
        the same bytes, so their reading is kept (bounded): the decision is made every time."""
        read = self._read.get(payload)
        if read is None:
            read = read_notify(payload)
            if len(payload) <= READ_MAX_BYTES:  # HAProxy's questions are small; a large one is read each time
                if len(self._read) >= READ_MAX:
                    self._read.clear()
                self._read[payload] = read
        return b"" if read is NO_QUESTION else self.check(*read)

    def check(self, question: Optional[tuple], why: str) -> bytes:
        if question is None:
            return _answer(False, why)
        user, action, model, service, deployment, client = question
        state = self._registry.resolve(service, deployment)
        if state is None:
            return _answer(None, f"not serving Ranger service {service!r}" if service or deployment
                           else "several Ranger services are served: name `service` or `deployment`")
        try:
            answer = self._decider.decide(state, Identity(True, user, frozenset()), model, action, SCOPE_SELF, client)
        except UnknownAction as exc:
            return _answer(False, str(exc))
        except Exception:  # never a dropped connection for one question: fail this one closed
            log.exception("the SPOE agent failed to decide %s on %r", action, model)
            return _answer(None, "authz failed to decide")
        return _answer(answer.allowed, answer.reason)

    async def start(self, path: Path) -> None:
        sock = bind_unix(path)
        self._path = path
        self._server = await asyncio.get_running_loop().create_unix_server(lambda: SpoaConnection(self), sock=sock)
        log.info("SPOE agent listening on %s", path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close(spop.NORMAL, "authz stopping")
        if self._server is not None:
            await self._server.wait_closed()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()


def bind_unix(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0660 from the start (umask, not a chmod after the
    bind: no moment at which others may connect). A stale socket left by a stopped authz is
    replaced; a live one, or anything else at the path, is a ConfigError."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(f"spoa_socket {path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
        else:
            raise ConfigError(f"spoa_socket {path}: another agent is listening there")
        finally:
            probe.close()
    if not path.parent.is_dir():
        raise ConfigError(f"spoa_socket {path}: folder {path.parent} does not exist")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~SOCKET_MODE)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"spoa_socket {path}: {exc}") from None
    finally:
        os.umask(old)
    sock.listen(256)
    sock.setblocking(False)
    return sock


class SpoaConnection(asyncio.Protocol):
    """One HAProxy connection: HELLO, then NOTIFY frames answered in order with ACKs."""

    def __init__(self, agent: SpoaAgent) -> None:
        self._agent = agent
        self._transport: Optional[asyncio.Transport] = None
        self._buffer = bytearray()
        self._max_size = MAX_FRAME_SIZE
        self._ready = False
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass
        self._agent.connections.add(self)
        self._agent.metrics.spoa_connections.inc()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self in self._agent.connections:
            self._agent.connections.discard(self)
            self._agent.metrics.spoa_connections.dec()
        if not self._closing:
            self._agent.metrics.spoa_disconnects.labels("closed by haproxy").inc()

    # A peer not reading its ACKs is not read from either: answers never pile up in memory.
    def pause_writing(self) -> None:
        assert self._transport is not None
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        assert self._transport is not None
        if not self._closing:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buffer += data
        out = []
        try:
            for frame in spop.split_frames(self._buffer, self._max_size):
                out.append(self._handle(frame))
                if self._closing:
                    break
        except spop.SpopError as exc:
            log.warning("SPOE agent: closing a connection: %s (status %d)", exc, exc.status)
            out.append(self._disconnect(exc.status, str(exc)))
        assert self._transport is not None
        self._transport.write(b"".join(out))
        if self._closing:
            self._transport.close()

    def close(self, status: int, message: str) -> None:
        if self._transport is not None and not self._closing:
            self._transport.write(self._disconnect(status, message))
            self._transport.close()

    def _disconnect(self, status: int, message: str) -> bytes:
        self._closing = True
        self._agent.metrics.spoa_disconnects.labels(spop.STATUS_NAMES.get(status, str(status))).inc()
        return spop.agent_disconnect(status, message)

    def _handle(self, frame: spop.Frame) -> bytes:
        if not self._ready:
            if frame.type != spop.HAPROXY_HELLO:
                raise spop.SpopError(spop.INVALID, f"frame type {frame.type} before HAPROXY-HELLO")
            self._max_size, healthcheck = spop.negotiate(spop.decode_kv_list(frame.payload), MAX_FRAME_SIZE)
            self._ready = True
            self._closing = healthcheck  # a health check closes after the hello
            return spop.agent_hello(self._max_size, "pipelining")
        if frame.type == spop.NOTIFY:
            if frame.flags & (spop.FLAG_FIN | spop.FLAG_ABORT) != spop.FLAG_FIN:
                raise spop.SpopError(spop.NO_FRAGMENTATION, "fragmented NOTIFY (never announced)")
            return spop.ack(frame.stream_id, frame.frame_id, self._agent.answer(frame.payload))
        if frame.type == spop.HAPROXY_DISCONNECT:
            return self._disconnect(spop.NORMAL, "bye")
        if frame.type in (spop.UNSET, spop.HAPROXY_HELLO, spop.AGENT_HELLO, spop.AGENT_DISCONNECT, spop.ACK):
            raise spop.SpopError(spop.INVALID, f"unexpected frame type {frame.type}")
        return b""  # an unknown frame type may be skipped (SPOE.txt 3.2.2)
