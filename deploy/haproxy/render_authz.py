#!/usr/bin/env python3
"""Render haproxy-authz.cfg.tmpl (HAProxy enforcing tarn-authz decisions). Standard library only.

    deploy/haproxy/render_authz.py --authz-url http://127.0.0.1:8096 --gateway-token-file /etc/tarn/gw.token \
        --users-file /etc/tarn/haproxy-users --http-port 8080 --out /etc/haproxy/haproxy.cfg

--users-file holds userlist lines (`user alice password <crypt(3) hash>`). --gateway-keys-file is
the map of each backend's Triton key (`<backend> <key>` lines; docs/deploy.md, "Triton answers
only the gateways"): the backend adds it to every request as tarn-gateway-key. --trusted-network
enables the documented opt-in: requests from those networks may name the user with
X-TARN-User (for a trusted proxy in front of HAProxy that authenticated the user itself).
"""
from __future__ import annotations

import argparse
import secrets
import string
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "haproxy-authz.cfg.tmpl"
LUA_FILE = HERE / "tarn_authz.lua"


GATEWAY_KEY_HEADER = "tarn-gateway-key"


def gateway_key_rule(keys_map: Optional[Path]) -> str:
    """The backend line that adds the deployment's Triton key, looked up by backend name in the
    map file (read when HAProxy starts; `set map` on the admin socket changes it live). A
    backend the map lacks sends no usable key, which Triton refuses."""
    if keys_map is None:
        return f"    # {GATEWAY_KEY_HEADER}: off (no --gateway-keys-file; Triton must then run unrestricted)"
    if any(c.isspace() or c in "\"'#(),]" for c in str(keys_map)):
        raise ValueError("the gateway keys file's path must be without spaces, quotes, '#', brackets or commas")
    return f"    http-request set-header {GATEWAY_KEY_HEADER} %[be_name,map({keys_map})]"


def trusted_header_rules(networks: Sequence[str]) -> str:
    if not networks:
        return "    # trusted-network identity header: off (see README.md to opt in)"
    nets = " ".join(networks)
    return "\n".join([
        "    # OPT-IN: a trusted proxy on these networks names the user with X-TARN-User.",
        f"    acl tarn_trusted_net src {nets}",
        "    http-request set-var(txn.tarn_user) req.hdr(X-TARN-User) if tarn_trusted_net { req.hdr(X-TARN-User) -m found }",
    ])


def render(*, run_dir: Path, http_port: int, index_port: int, authz_url: str, gateway_token: str,
           users: Iterable[str], servers: Iterable[str] = (), bind: str = "127.0.0.1", cache_ttl_s: float = 2.0,
           timeout_ms: int = 1000, trusted_networks: Sequence[str] = (), index_secret: Optional[str] = None,
           lua_file: Path = LUA_FILE, gateway_keys: Optional[Path] = None) -> str:
    for name, value in (("gateway token", gateway_token), ("authz url", authz_url)):
        if not value or any(c.isspace() or c in "\"'#" for c in value):
            raise ValueError(f"the {name} must be non-empty without spaces, quotes or '#'")
    values: Dict[str, object] = dict(
        RUN_DIR=run_dir, HTTP_PORT=http_port, INDEX_PORT=index_port, AUTHZ_URL=authz_url.rstrip("/"),
        GATEWAY_TOKEN=gateway_token, CACHE_TTL_S=cache_ttl_s, TIMEOUT_MS=timeout_ms, BIND=bind,
        INDEX_SECRET=index_secret or secrets.token_hex(16), LUA_FILE=lua_file,
        USERS="\n".join(f"    {line.strip()}" for line in users if line.strip()),
        SERVERS="\n".join(f"    {line.strip()}" for line in servers if line.strip()),
        TRUSTED_HEADER_RULES=trusted_header_rules(trusted_networks), GATEWAY_KEY_RULE=gateway_key_rule(gateway_keys),
    )
    return string.Template(TEMPLATE.read_text()).substitute(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("/run/haproxy"))
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--index-port", type=int, default=8079)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--authz-url", required=True)
    parser.add_argument("--gateway-token-file", type=Path, required=True)
    parser.add_argument("--users-file", type=Path, required=True)
    parser.add_argument("--server", action="append", default=[], help="a static `server name host:port` line")
    parser.add_argument("--cache-ttl-s", type=float, default=2.0)
    parser.add_argument("--trusted-network", action="append", default=[])
    parser.add_argument("--gateway-keys-file", type=Path, help="`<backend> <Triton key>` lines (mode 600)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    text = render(run_dir=args.run_dir, http_port=args.http_port, index_port=args.index_port,
                  authz_url=args.authz_url, gateway_token=args.gateway_token_file.read_text().strip(),
                  users=args.users_file.read_text().splitlines(), servers=args.server, bind=args.bind,
                  cache_ttl_s=args.cache_ttl_s, trusted_networks=args.trusted_network,
                  gateway_keys=args.gateway_keys_file.absolute() if args.gateway_keys_file else None)
    args.out.write_text(text)
    args.out.chmod(0o600)  # it holds the gateway token


if __name__ == "__main__":
    main()
