"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import contextlib
import socket
from typing import List

LOOPBACK = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> List[int]:
    """Return ``count`` distinct ports that were free on ``host`` a moment ago.

    All sockets stay bound until every port is chosen, so the ports differ from each
    other; another process can still take one before the caller binds it, so a caller
    that must be sure retries on "address in use".
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port(host: str = LOOPBACK) -> int:
    """Return one port that was free on ``host`` a moment ago."""
    return free_ports(1, host)[0]
