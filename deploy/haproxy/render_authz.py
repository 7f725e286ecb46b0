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
import importlib.util
import math
import re
import secrets
import string
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "haproxy-authz.cfg.tmpl"
LUA_FILE = HERE / "tarn_authz.lua"
GRPC_LUA_FILE = HERE / "tarn_authz_grpc.lua"
GRPC_BLOCKS = re.compile(r"(?:^\n)?^# grpc:begin\b.*?^# grpc:end\n", re.M | re.S)
# tune.bufsize above the largest gRPC message read: room for the headers and HAProxy's reserve.
GRPC_BUFFER_HEADROOM = 16384


def _model_routes():
    """render_model_routes.py beside this script (deploy/haproxy is no package)."""
    spec = importlib.util.spec_from_file_location("render_model_routes", HERE / "render_model_routes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


GATEWAY_KEY_HEADER = "tarn-gateway-key"
# Triton's gRPC server reads a restricted protocol's key from metadata with this prefix.
GRPC_GATEWAY_KEY_HEADER = f"triton-grpc-protocol-{GATEWAY_KEY_HEADER}"


def gateway_key_rule(keys_map: Optional[Path], header: str = GATEWAY_KEY_HEADER) -> str:
    """The backend line that adds the deployment's Triton key, looked up by backend name in the
    map file (read when HAProxy starts; `set map` on the admin socket changes it live). A
    backend the map lacks sends no usable key, which Triton refuses."""
    if keys_map is None:
        return f"    # {header}: off (no --gateway-keys-file; Triton must then run unrestricted)"
    if any(c.isspace() or c in "\"'#(),]" for c in str(keys_map)):
        raise ValueError("the gateway keys file's path must be without spaces, quotes, '#', brackets or commas")
    return f"    http-request set-header {header} %[be_name,map({keys_map})]"


def trusted_header_rules(networks: Sequence[str]) -> str:
    if not networks:
        return "    # trusted-network identity header: off (see README.md to opt in)"
    nets = " ".join(networks)
    return "\n".join([
        "    # OPT-IN: a trusted proxy on these networks names the user with X-TARN-User.",
        f"    acl tarn_trusted_net src {nets}",
        "    http-request set-var(txn.tarn_user) req.hdr(X-TARN-User) if tarn_trusted_net { req.hdr(X-TARN-User) -m found }",
    ])


SPOE_FILE = "tarn-authz-spoe.conf"
# The SPOE engine's own file (HAProxy reads it beside the configuration): one message with
# what the frontend's rules mapped, sent on a miss; answers land in txn.tarn.allowed and
# txn.tarn.reason (txn.tarn.error when the agent fails, e.g. `%[var(txn.tarn.error)]` in a log format).
SPOE_CONF = """[tarn]
spoe-agent tarn-authz
    groups tarn-check
    option var-prefix tarn
    option set-on-error error
    # SPOE.txt: hello below the backend's connect timeout, idle below its server timeout.
    timeout hello 2s
    timeout idle 30s
    timeout processing {timeout_ms}ms
    use-backend tarn_spoa
spoe-message tarn-check
    args user=var(txn.tarn_user) action=var(txn.tarn_action) model=var(txn.tarn_model) client=src
spoe-group tarn-check
    messages tarn-check
"""


def spoe_values(run_dir: Path, socket: Optional[Path], timeout_ms: int, cache_ttl_s: float) -> Dict[str, str]:
    """The template's SPOE lines: with an agent socket, misses on plain model paths are asked of
    tarn-authz's SPOE agent (pipelined SPOP, no HTTP request per question) instead of the Lua
    action; an allow is stored in HAProxy's decision cache for the whole seconds of the TTL.
    Writes the engine's file into run_dir."""
    if socket is None:
        off = "    # SPOE agent: off (--authz-spoa-socket); misses go to the Lua action"
        return dict(SPOE_FILTER=off, SPOE_RULES=off, SPOE_BACKEND="")
    if any(c.isspace() or c in "\"'#" for c in str(socket)):
        raise ValueError("the SPOE agent socket's path must be without spaces, quotes or '#'")
    conf = run_dir / SPOE_FILE
    conf.write_text(SPOE_CONF.format(timeout_ms=int(timeout_ms)))
    plain = "{ var(txn.tarn_action) -m found }"
    rules = [
        "    # A miss on a plain model path: tarn-authz's SPOE agent decides (no answer in time: 503).",
        f"    http-request send-spoe-group tarn tarn-check if {plain} !{{ var(txn.tarn_authz) -m found }}",
        "    http-request set-var(txn.tarn_authz) str(allow) if { var(txn.tarn.allowed) -m bool }",
        "    http-request set-var(txn.tarn_authz) str(deny) if { var(txn.tarn.allowed) -m found }"
        " !{ var(txn.tarn.allowed) -m bool }",
        f"    http-request set-var(txn.tarn_authz) str(unavailable) if {plain} !{{ var(txn.tarn_authz) -m found }}",
    ]
    whole_s = math.floor(max(cache_ttl_s, 0))
    if whole_s >= 1:  # date + whole seconds of the TTL: never past it
        rules.append(f"    http-request set-var(txn.tarn_cache_until) date,add({whole_s}) if "
                     "{ var(txn.tarn.allowed) -m bool } { var(txn.tarn_key) -m found }")
    return dict(SPOE_FILTER=f"    filter spoe engine tarn config {conf}", SPOE_RULES="\n".join(rules),
                SPOE_BACKEND="\n".join([
                    "# tarn-authz's SPOE agent (the socket's mode is its trust boundary).",
                    "backend tarn_spoa", "    mode tcp", "    timeout connect 5s", "    timeout server 1m",
                    f"    server authz unix@{socket}", ""]))


def render(*, run_dir: Path, http_port: int, index_port: int, authz_url: str, gateway_token: str,
           users: Iterable[str], servers: Iterable[str] = (), bind: str = "127.0.0.1", cache_ttl_s: float = 2.0,
           timeout_ms: int = 1000, trusted_networks: Sequence[str] = (), index_secret: Optional[str] = None,
           lua_file: Path = LUA_FILE, gateway_keys: Optional[Path] = None, grpc_port: Optional[int] = None,
           grpc_servers: Iterable[str] = (), grpc_max_message: int = 65536, audit_summary_ms: int = 5000,
           model_slots: int = 0, cold_start_url: Optional[str] = None, cold_start_wait_s: float = 60.0,
           retry_after_s: int = 5, cold_start_token: str = "", spoa_socket: Optional[Path] = None) -> str:
    """Without ``grpc_port`` the gRPC frontend and backend are left out. ``model_slots``: route
    per model (docs/deploy.md, "Per-model routing") with that many slot backends per backend;
    the empty model maps are created in ``run_dir``. ``cold_start_url`` (gateway-sync's API,
    with ``model_slots``): hold requests for a model scaled to zero (tarn_cold_start.lua) at
    most ``cold_start_wait_s``, then 503 with Retry-After ``retry_after_s``. ``spoa_socket``:
    tarn-authz's SPOE agent (its spoa_socket) answers the misses on plain model paths."""
    if cold_start_url and model_slots <= 0:
        raise ValueError("a cold-start url needs --model-slots: only a model routed per model can be held")
    for name, value in (("gateway token", gateway_token), ("authz url", authz_url)):
        if not value or any(c.isspace() or c in "\"'#" for c in value):
            raise ValueError(f"the {name} must be non-empty without spaces, quotes or '#'")
    values: Dict[str, object] = dict(
        RUN_DIR=run_dir, HTTP_PORT=http_port, INDEX_PORT=index_port, AUTHZ_URL=authz_url.rstrip("/"),
        GATEWAY_TOKEN=gateway_token, CACHE_TTL_S=cache_ttl_s, TIMEOUT_MS=timeout_ms, BIND=bind,
        AUDIT_SUMMARY_MS=int(audit_summary_ms), DECISION_EXPIRE_S=math.ceil(max(cache_ttl_s, 0)) + 1,
        HITS_EXPIRE_MS=3 * max(100, int(audit_summary_ms)),  # the Lua reads it at most every 100 ms
        INDEX_SECRET=index_secret or secrets.token_hex(16), LUA_FILE=lua_file,
        USERS="\n".join(f"    {line.strip()}" for line in users if line.strip()),
        SERVERS="\n".join(f"    {line.strip()}" for line in servers if line.strip()),
        TRUSTED_HEADER_RULES=trusted_header_rules(trusted_networks), GATEWAY_KEY_RULE=gateway_key_rule(gateway_keys),
        GRPC_KEY_RULE=gateway_key_rule(gateway_keys, GRPC_GATEWAY_KEY_HEADER),
        GRPC_PORT=grpc_port, GRPC_LUA_FILE=GRPC_LUA_FILE, GRPC_MAX_MESSAGE=grpc_max_message,
        GRPC_BUFSIZE=max(16384, grpc_max_message + GRPC_BUFFER_HEADROOM),
        GRPC_SERVERS="\n".join(f"    {line.strip()}" for line in grpc_servers if line.strip()),
        **_model_values(run_dir, model_slots, gateway_keys, grpc_port is not None, bool(cold_start_url),
                        retry_after_s),
        **spoe_values(run_dir, spoa_socket, timeout_ms, cache_ttl_s),
        COLD_START_GLOBAL=_model_routes().global_lines(cold_start_url, cold_start_wait_s, cold_start_token)
        if cold_start_url else "    # cold start of a model scaled to zero: off (--cold-start-url)",
    )
    template = TEMPLATE.read_text()
    if grpc_port is None:
        template = GRPC_BLOCKS.sub("", template)
    return string.Template(template).substitute(values)


def _model_values(run_dir: Path, slots: int, keys: Optional[Path], grpc: bool, cold_start: bool = False,
                  retry_after_s: int = 5) -> Dict[str, str]:
    off = "    # per-model routing: off (--model-slots)"
    if slots <= 0:
        return dict(MODEL_ROUTES=off, MODEL_BACKENDS="", GRPC_MODEL_ROUTES=off, GRPC_MODEL_BACKENDS="")
    routes = _model_routes()
    values = {}
    for prefix, backend, var in (("", "triton_backend", ""), ("GRPC_", "triton_grpc_backend", "txn.tarn_grpc_model")):
        if prefix and not grpc:
            values.update(GRPC_MODEL_ROUTES=off, GRPC_MODEL_BACKENDS="")
            continue
        map_file = routes.map_path(run_dir, backend)
        routes.write_empty_map(map_file)
        values[prefix + "MODEL_ROUTES"] = routes.frontend_rules(backend, map_file, var, cold_start, retry_after_s)
        values[prefix + "MODEL_BACKENDS"] = routes.slot_backends(backend, slots, keys, grpc=bool(prefix))
    return values


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
    parser.add_argument("--grpc-port", type=int, help="a gRPC (HTTP/2) frontend on this port; none without it")
    parser.add_argument("--grpc-server", action="append", default=[], help="a static gRPC `server name host:port` line")
    parser.add_argument("--grpc-max-message", type=int, default=65536,
                        help="the largest gRPC request message (bytes) the gateway reads and so admits")
    parser.add_argument("--cache-ttl-s", type=float, default=2.0)
    parser.add_argument("--audit-summary-ms", type=int, default=5000,
                        help="how often the cache hits counted are posted to authz's /audit/summary")
    parser.add_argument("--trusted-network", action="append", default=[])
    parser.add_argument("--gateway-keys-file", type=Path, help="`<backend> <Triton key>` lines (mode 600)")
    parser.add_argument("--model-slots", type=int, default=0,
                        help="route per model (--placement per-model) with this many slot backends; 0: off")
    parser.add_argument("--cold-start-url", help="gateway-sync's API (http://127.0.0.1:8095), with --model-slots: "
                                                 "hold requests for a model scaled to zero until a copy is up")
    parser.add_argument("--cold-start-wait-s", type=float, default=60.0,
                        help="longest a request is held for a model scaled to zero, then 503 with Retry-After")
    parser.add_argument("--retry-after-s", type=int, default=5, help="Retry-After of a held request that expired")
    parser.add_argument("--cold-start-token-file", type=Path, help="gateway-sync's API token, if it has one")
    parser.add_argument("--authz-spoa-socket", type=Path,
                        help="tarn-authz's SPOE agent socket (its spoa_socket): misses on model paths are asked "
                             "over SPOP, several times faster than the Lua action's HTTP request")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    text = render(run_dir=args.run_dir, http_port=args.http_port, index_port=args.index_port,
                  authz_url=args.authz_url, gateway_token=args.gateway_token_file.read_text().strip(),
                  users=args.users_file.read_text().splitlines(), servers=args.server, bind=args.bind,
                  cache_ttl_s=args.cache_ttl_s, trusted_networks=args.trusted_network,
                  gateway_keys=args.gateway_keys_file.absolute() if args.gateway_keys_file else None,
                  grpc_port=args.grpc_port, grpc_servers=args.grpc_server, grpc_max_message=args.grpc_max_message,
                  audit_summary_ms=args.audit_summary_ms, model_slots=args.model_slots,
                  cold_start_url=args.cold_start_url, cold_start_wait_s=args.cold_start_wait_s,
                  retry_after_s=args.retry_after_s, spoa_socket=args.authz_spoa_socket,
                  cold_start_token=args.cold_start_token_file.read_text().strip() if args.cold_start_token_file else "")
    args.out.write_text(text)
    args.out.chmod(0o600)  # it holds the gateway token


if __name__ == "__main__":
    main()
