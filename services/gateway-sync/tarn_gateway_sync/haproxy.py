"""The HAProxy Runtime API, over a unix socket or TCP: read a backend, execute a plan.

Every library and socket error becomes UnavailableError or HaproxyCommandError here.
"""
from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import replace
from typing import Dict, List, Optional, Sequence

from tarn_shared.errors import TarnError, UnavailableError

from .plan import (EMPTY_SLOT_IP, AddServer, Admin, ClearSlot, DrainServer, FillSlot, HaproxyAction, ReadyServer,
                   RemoveServer, ServerState, SlotsExhausted)

# srv_admin_state bits (src/server-t.h): forced/inherited/resolution/hostname maintenance, drain. CMAINT
# (0x04, "disabled" in the config) stays set after `set server state ready` brings a slot up, so it is ignored.
_MAINT_BITS = 0x01 | 0x02 | 0x20 | 0x40
_DRAIN_BITS = 0x08 | 0x10
_SRV_RUNNING = 2
_ERROR = re.compile(r"No such|Require|not in maintenance|Unknown command|Already exists|[Ee]rror|[Ff]ailed|"
                    r"[Ii]nvalid|[Cc]an't|[Cc]annot|Permission denied|still has|not found|Unexpected")
_SEPARATORS = re.compile(r"[;\n\r\x00]")  # `;` and a line end start another Runtime API command
BATCH_CHARS = 2000  # per request: well under tune.bufsize (16 kB), and answered within timeout_s at 10,000 servers
DUMP_TIMEOUT_FACTOR = 15  # a whole backend's dump grows with it: 10,000 servers took 5 s here
SESSION_READS_MAX = 100  # servers read one by one in a request (each answer repeats the 1.5 kB header)


class HaproxyCommandError(TarnError):
    """HAProxy answered a Runtime API command with an error."""


class SlotsExhaustedError(TarnError):
    """The seeds' placeholder layout has no free slot left for a ready instance."""


class RuntimeApi:
    """One HAProxy process. ``address``: a unix socket path (optionally ``unix:``-prefixed)
    or ``tcp:host:port`` / ``host:port``."""

    def __init__(self, address: str, timeout_s: float = 2.0, check: bool = True) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.check = check
        if address.startswith("unix:") or address.startswith("/"):
            self._unix: Optional[str] = address[5:] if address.startswith("unix:") else address
            self._tcp = None
        else:
            host, _, port = (address[4:] if address.startswith("tcp:") else address).rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"not a HAProxy Runtime API address: {address!r}")
            self._unix, self._tcp = None, (host, int(port))

    async def command(self, line: str, timeout_s: Optional[float] = None) -> str:
        """Send one command on a fresh connection (HAProxy closes it after answering)."""
        return await self.commands([line], timeout_s)

    async def commands(self, lines: Sequence[str], timeout_s: Optional[float] = None) -> str:
        """Send commands joined by ``;`` in one request; HAProxy answers them in one pass."""
        for line in lines:  # the last net: names are checked before they get here (admission)
            if _SEPARATORS.search(line):
                raise HaproxyCommandError(f"refused to send {line!r} to HAProxy at {self.address}: "
                                          f"it holds a separator")
        try:
            return await asyncio.wait_for(self._exchange(";".join(lines)), timeout=timeout_s or self.timeout_s)
        except (OSError, asyncio.TimeoutError, EOFError) as exc:
            raise UnavailableError(f"HAProxy at {self.address} unreachable: {exc!r}") from None

    async def _exchange(self, line: str) -> str:
        if self._unix is not None:
            reader, writer = await asyncio.open_unix_connection(self._unix)
        else:
            assert self._tcp is not None
            reader, writer = await asyncio.open_connection(*self._tcp)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode(errors="replace")
        finally:
            writer.close()

    async def execute(self, line: str) -> str:
        answer = await self.command(line)
        if _ERROR.search(answer):
            raise HaproxyCommandError(f"HAProxy at {self.address} refused {line!r}: {answer.strip()}")
        return answer

    async def identity(self) -> str:
        """Changes whenever HAProxy restarts or reloads (new process)."""
        info = await self.command("show info")
        fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
        if "Pid" not in fields:
            raise UnavailableError(f"HAProxy at {self.address} answered 'show info' without a Pid")
        return f"{fields['Pid']}@{fields.get('Start_time_sec', '')}"

    async def servers(self, backend: str) -> List[ServerState]:
        answer = await self.command(f"show servers state {backend}", self.timeout_s * DUMP_TIMEOUT_FACTOR)
        if answer.startswith("Can't find backend"):
            raise HaproxyCommandError(f"HAProxy at {self.address} has no backend {backend!r}")
        servers = parse_servers_state(answer)
        draining = [s for s in servers if s.admin is Admin.DRAIN]
        if draining:
            sessions = await self.sessions(backend, draining)
            servers = [replace(s, sessions=sessions.get(s.name, 0)) for s in servers]
        return servers

    async def sessions(self, backend: str, servers: Sequence[ServerState] = ()) -> Dict[str, int]:
        """Open requests per server (``show stat``): of just ``servers`` when HAProxy's id of
        each is known (a read per server, all in one request), else of the whole backend
        (2 MB at 10,000 servers)."""
        ids = [s.srv_id for s in servers]
        if ids and None not in ids and len(ids) <= SESSION_READS_MAX:
            answer = await self.commands([f"show stat {backend} 4 {i}" for i in ids])
        else:
            answer = await self.command(f"show stat {backend} 4 -1", self.timeout_s * DUMP_TIMEOUT_FACTOR)
        return parse_sessions(answer)

    async def apply(self, backend: str, actions: Sequence[HaproxyAction], server_options: str = "") -> None:
        """Execute a plan in order; a refusal raises (the next reconcile retries). The
        commands go out joined by ``;``, up to BATCH_CHARS per request: HAProxy answers each
        request in one pass, where one connection per command costs a round trip each (tens
        of ms on a busy machine) and 10,000 instances churning need hundreds a second.
        ``server_options`` follow each `add server` (`proto h2` for a gRPC backend)."""
        lines: List[str] = []
        exhausted: Optional[SlotsExhausted] = None
        for action in actions:
            if isinstance(action, SlotsExhausted):
                exhausted = action
            else:
                lines += self._commands(f"{backend}/{action.name}", action, server_options)
        batch: List[str] = []
        for line in lines:
            if batch and sum(len(b) + 1 for b in batch) + len(line) > BATCH_CHARS:
                await self._execute_batch(batch)
                batch = []
            batch.append(line)
        if batch:
            await self._execute_batch(batch)
        if exhausted is not None:
            raise SlotsExhaustedError(
                f"backend {backend!r} at {self.address} has no free placeholder slot for "
                f"{', '.join(exhausted.addresses)}: add `server triton-N 0.0.0.0:8000 check disabled` lines "
                f"(at least --max-instances of them) and reload HAProxy")

    def _commands(self, ref: str, action: HaproxyAction, server_options: str = "") -> List[str]:
        if isinstance(action, AddServer):
            return [f"add server {ref} {action.ip}:{action.port}" + (" check" if self.check else "")
                    + (f" id {action.srv_id}" if action.srv_id is not None else "")
                    + (f" {server_options}" if server_options else ""),
                    f"enable server {ref}"] + ([f"enable health {ref}"] if self.check else [])
        if isinstance(action, FillSlot):
            return [f"set server {ref} addr {action.ip} port {action.port}", f"set server {ref} state ready"] + \
                ([f"enable health {ref}"] if self.check else [])
        if isinstance(action, ReadyServer):
            return [f"set server {ref} state ready"]
        if isinstance(action, DrainServer):
            return [f"set server {ref} state drain"]
        if isinstance(action, RemoveServer):
            return [f"set server {ref} state maint", f"shutdown sessions server {ref}", f"del server {ref}"]
        assert isinstance(action, ClearSlot)
        return [f"set server {ref} state maint", f"shutdown sessions server {ref}",
                f"set server {ref} addr {EMPTY_SLOT_IP} port 8000"]

    async def _execute_batch(self, lines: Sequence[str]) -> None:
        answer = await self.commands(lines)  # each checked alone: the only separators sent join them
        if _ERROR.search(answer):
            joined = ";".join(lines)
            shown = joined if len(joined) <= 300 else joined[:300] + "..."
            raise HaproxyCommandError(f"HAProxy at {self.address} refused part of {shown!r}: "
                                      f"{' '.join(answer.split())[:500]}")


def parse_servers_state(answer: str) -> List[ServerState]:
    """``show servers state`` (format version 1): be_id be_name srv_id srv_name srv_addr
    srv_op_state srv_admin_state ... srv_port is column 18."""
    servers = []
    for line in answer.splitlines():
        fields = line.split()
        if len(fields) < 19 or line.startswith("#"):
            continue
        admin_bits = int(fields[6])
        admin = Admin.MAINT if admin_bits & _MAINT_BITS else Admin.DRAIN if admin_bits & _DRAIN_BITS else Admin.READY
        port = int(fields[18]) if fields[18].isdigit() else 0
        servers.append(ServerState(fields[3], fields[4], port, admin, int(fields[5]) == _SRV_RUNNING,
                                   srv_id=int(fields[2]) if fields[2].isdigit() else None))
    return servers


def parse_sessions(answer: str) -> Dict[str, int]:
    """Open requests per server: current sessions (``scur``) plus those queued for it (``qcur``).
    ``answer``: one ``show stat`` or several (each its own header, blocks apart by an empty line)."""
    found: Dict[str, int] = {}
    for block in answer.split("\n\n"):
        rows = csv.DictReader(io.StringIO(block.strip().lstrip("# ")))
        found.update({row["svname"]: int(row.get("scur") or 0) + int(row.get("qcur") or 0) for row in rows
                      if row.get("svname") not in (None, "BACKEND", "FRONTEND")})
    return found
