"""Instance host names resolved to the IPs HAProxy's Runtime API takes, cached."""
from __future__ import annotations

import asyncio
import socket
from typing import Dict, Tuple

from tarn_shared.membership import Member

from .plan import Target
from .sync_metrics import Clock, ErrorLog

RESOLVE_TTL_S = 60.0


class Resolver:
    """HAProxy's `set server addr` takes an IP: instance host names are resolved here,
    cached for ``ttl_s``."""

    def __init__(self, errors: ErrorLog, clock: Clock = Clock(), ttl_s: float = RESOLVE_TTL_S) -> None:
        self._errors = errors
        self._clock = clock
        self._ttl_s = ttl_s
        self._cache: Dict[str, Tuple[str, float]] = {}

    async def targets(self, members: Dict[str, Member], grpc: bool = False) -> Dict[str, Target]:
        """One Target per address, at the instance's HTTP port (``grpc``: its gRPC port, and
        those without one left out); an address whose host does not resolve is left out."""
        targets = {}
        for address, member in members.items():
            assert member.endpoints is not None
            port = member.endpoints.grpc_port if grpc else member.endpoints.http_port
            if port is None:
                continue
            try:
                ip = await self.resolve(member.endpoints.host)
            except OSError as exc:
                self._errors("resolve", exc, address=address)
                continue
            targets[address] = Target(address, ip, port)
        return targets

    async def resolve(self, host: str) -> str:
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
            return host
        except OSError:
            pass
        cached = self._cache.get(host)
        if cached and cached[1] > self._clock.monotonic():
            return cached[0]
        info = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        ip = info[0][4][0]
        self._cache[host] = (ip, self._clock.monotonic() + self._ttl_s)
        return ip
