"""The shapes a name from Redis must have before gateway-sync puts it into a Runtime API
command or a znode path. Redis is not a trust root: whoever can write it could otherwise
send `;`- or newline-separated commands to HAProxy, or `..` paths to ZooKeeper. Each
function answers None for a good value, or why it is not one. Pure; ASCII only (a Unicode
digit or letter is not one of ours)."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Optional, Tuple

# As `tarn submit --haproxy-backend` takes it (and HAProxy allows the characters).
BACKEND = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A znode path segment: no "." or ".." (the first character is never a dot), no "/".
ZNODE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
ZK_PATH_MAX = 255
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
HOST_MAX = 253
PORT = re.compile(r"[0-9]{1,5}")
ENSEMBLE_MAX_HOSTS = 16


@dataclass(frozen=True)
class EnsembleName:
    """A ZooKeeper connection string taken apart: ``hosts`` sorted, lower case, as
    tarn_shared.claims compares them; ``chroot`` "" or a path."""

    hosts: str
    chroot: str


def backend_problem(name: object) -> Optional[str]:
    if not isinstance(name, str) or not BACKEND.fullmatch(name):
        return (f"backend {_shown(name)} is not a name of letters, digits, '_', '.' or '-' "
                f"(at most 63, starting with a letter or digit)")
    return None


def zk_path_problem(path: object) -> Optional[str]:
    """An absolute path of plain segments: no empty segment (`//`, a trailing `/`), no `.`
    or `..`, nothing but letters, digits, '_', '.' and '-'."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > ZK_PATH_MAX or path == "/":
        return f"ZooKeeper path {_shown(path)} is not an absolute path of at most {ZK_PATH_MAX} characters"
    bad = next((s for s in path[1:].split("/") if not ZNODE_SEGMENT.fullmatch(s)), None)
    if bad is not None:
        return (f"ZooKeeper path {_shown(path)} has the segment {_shown(bad)}: use letters, digits, '_', '-' "
                f"and '.' (not first), no empty segment")
    return None


def host_problem(host: object) -> Optional[str]:
    """An IPv4 or IPv6 address (no zone), or a host name of RFC 1123 labels."""
    if not isinstance(host, str) or not host or len(host) > HOST_MAX:
        return f"host {_shown(host)} is empty or longer than {HOST_MAX} characters"
    if ":" in host:
        if "%" not in host and _is_ip(host, 6):
            return None
        return f"host {_shown(host)} is not an IPv6 address"
    if HOST_NAME.fullmatch(host):
        if host.replace(".", "").isdigit() and not IPV4.fullmatch(host):  # all digits: an address or nothing
            return f"host {_shown(host)} is not an IPv4 address"
        return None
    return f"host {_shown(host)} is not an IP address or a host name (letters, digits, '-', dots between labels)"


def port_problem(port: object) -> Optional[str]:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"port {_shown(port)} is not between 1 and 65535"
    return None


def parse_ensemble(connection: object) -> Tuple[Optional[EnsembleName], Optional[str]]:
    """``host:port[,host:port...][/chroot]`` -> (the ensemble, None) or (None, why not)."""
    if not isinstance(connection, str) or not connection:
        return None, f"ZooKeeper ensemble {_shown(connection)} is empty"
    hosts_part, slash, chroot = connection.partition("/")
    hosts = hosts_part.split(",")
    if len(hosts) > ENSEMBLE_MAX_HOSTS:
        return None, f"ZooKeeper ensemble {_shown(connection)} names more than {ENSEMBLE_MAX_HOSTS} servers"
    for server in hosts:
        host, colon, port = server.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        problem = None if colon and PORT.fullmatch(port) else f"{_shown(server)} is not host:port"
        problem = problem or host_problem(host) or port_problem(int(port))
        if problem:
            return None, f"ZooKeeper ensemble {_shown(connection)}: {problem}"
    if slash:
        problem = zk_path_problem("/" + chroot)
        if problem:
            return None, f"ZooKeeper ensemble {_shown(connection)}: chroot: {problem}"
    return EnsembleName(",".join(sorted(h.lower() for h in hosts)), "/" + chroot if slash else ""), None


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _shown(value: object) -> str:
    """A value in a message: quoted with escapes (a newline or NUL stays visible), cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
