#!/usr/bin/env python3
"""The HAProxy lines that route a backend per model (`--placement per-model`), to paste into
(or render with) haproxy.cfg.tmpl or haproxy-authz.cfg.tmpl:

    deploy/haproxy/render_model_routes.py --backend triton_backend --slots 32 \
        --map-dir /etc/haproxy --gateway-keys-file /etc/tarn/gateway-keys.map

prints the frontend rules (before the frontend's `default_backend`) and the slot backends,
and creates the empty map file HAProxy needs at start. gateway-sync finds both by name
(`<backend>_model_<N>`, `<backend>.models.map`) and keeps them through the Runtime API
(docs/deploy.md, "Per-model routing")."""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Optional

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
GATEWAY_KEY_HEADER = "tarn-gateway-key"
COLD_START_LUA = Path(__file__).resolve().parent / "tarn_cold_start.lua"
GRPC_GATEWAY_KEY_HEADER = f"triton-grpc-protocol-{GATEWAY_KEY_HEADER}"


def map_path(map_dir: Path, backend: str) -> Path:
    return map_dir / f"{backend}.models.map"


def frontend_rules(backend: str, map_file: Path, model_var: str = "", cold_start: bool = False,
                   retry_after_s: int = 5) -> str:
    """`/v2/models/{m}/...` to the slot backend the map names for m; everything else (index,
    health, a model with no slot) falls through to the frontend's default_backend. With
    ``model_var`` the model comes from that variable instead (gRPC: tarn_authz_grpc.lua sets
    txn.tarn_grpc_model from the request message). ``cold_start``: a request whose slot has no
    usable server is held by tarn_cold_start.lua (global_lines must load it) until a copy is
    up, else answered 503 (gRPC: UNAVAILABLE) with Retry-After ``retry_after_s``."""
    _check(backend, map_file)
    lines = [f"    # Per-model routing of {backend}: gateway-sync keeps {map_file.name} (model -> slot backend)."]
    if not model_var:
        model_var = "txn.tarn_model"
        lines.append(f"    http-request set-var({model_var}) path,field(4,/) if {{ path_beg /v2/models/ }}")
    if cold_start:
        grpc = model_var != "txn.tarn_model"
        found = f"{{ var({model_var}),map({map_file}) -m found }}"
        expired = "{ var(txn.tarn_cold) -m str expired }"
        lines += [
            "    # A model scaled to zero keeps its map entry: its request waits here while tarn-am loads a copy.",
            f"    http-request set-var(txn.tarn_slot) var({model_var}),map({map_file}) if {found}",
            f"    http-request set-var(txn.tarn_model_backend) str({backend}) if {found}",
        ]
        if grpc:  # tarn_cold_start.lua reads the model from txn.tarn_model
            lines.append(f"    http-request set-var(txn.tarn_model) var({model_var}) if {found}")
        lines.append(f"    http-request lua.tarn_cold_start if {found}")
        if grpc:
            lines.append(f"    http-request return status 200 hdr grpc-status 14 hdr grpc-message \"tarn: the model is "
                         f"starting, retry later\" hdr Retry-After {int(retry_after_s)} if {expired}")
        else:
            lines.append(f"    http-request return status 503 content-type text/plain hdr Retry-After "
                         f"{int(retry_after_s)} lf-string \"model %[var(txn.tarn_model)] is starting (scaled to "
                         f"zero): retry later\" if {expired}")
    lines.append(f"    use_backend %[var({model_var}),map({map_file})] if {{ var({model_var}),map({map_file}) -m found }}")
    return "\n".join(lines)


def global_lines(cold_start_url: str, wait_s: float = 60.0, token: str = "", lua_file: Path = COLD_START_LUA) -> str:
    """The `global` section's lines tarn_cold_start.lua needs: its settings and the lua-load."""
    for name, value in (("cold-start url", cold_start_url), ("cold-start token", token or "x")):
        if any(c.isspace() or c in "\"'#" for c in value):
            raise ValueError(f"the {name} must be without spaces, quotes or '#'")
    if not cold_start_url.startswith("http://"):
        raise ValueError(f"the cold-start url must be gateway-sync's http://host:port, not {cold_start_url!r}")
    if not 1 <= wait_s <= 3600:
        raise ValueError(f"the cold-start wait must be within 1..3600 s, not {wait_s:g}")
    lines = ["    # tarn_cold_start.lua: requests for a model scaled to zero wait for its first copy (bounded).",
             f"    setenv TARN_COLD_START_URL {cold_start_url.rstrip('/')}",
             f"    setenv TARN_COLD_START_WAIT_S {wait_s:g}"]
    if token:
        lines.append(f"    setenv TARN_COLD_START_TOKEN {token}")
    return "\n".join(lines + [f"    lua-load-per-thread {lua_file}"])


def slot_backends(backend: str, slots: int, keys_map: Optional[Path] = None, check_inter: str = "2s",
                  grpc: bool = False) -> str:
    """N empty backends gateway-sync adds the servers of one model's copies to. They send the
    deployment's Triton key (looked up under the deployment's backend name, not their own).
    ``grpc``: Triton's gRPC ports over h2, the key in gRPC metadata, no HTTP health check."""
    _check(backend, keys_map)
    header = GRPC_GATEWAY_KEY_HEADER if grpc else GATEWAY_KEY_HEADER
    key_rule = (f"    http-request set-header {header} %[str({backend}),map({keys_map})]"
                if keys_map else f"    # {header}: off (no gateway keys file)")
    check = [] if grpc else ["    option httpchk GET /v2/health/ready"]
    blocks = []
    for n in range(slots):
        blocks.append("\n".join([f"backend {backend}_model_{n}", "    balance roundrobin", *check,
                                 f"    default-server inter {check_inter} fall 2 rise 1" + (" proto h2" if grpc else ""),
                                 key_rule]))
    return "\n\n".join(blocks) + "\n"


def write_empty_map(map_file: Path) -> None:
    """HAProxy 2.6 refuses to start on a missing map file; its entries live in memory only
    (gateway-sync rewrites them after a reload), so the file stays empty."""
    map_file.parent.mkdir(parents=True, exist_ok=True)
    if not map_file.exists():
        map_file.write_text("")


def _check(backend: str, path: Optional[Path]) -> None:
    if not NAME.fullmatch(backend):
        raise ValueError(f"not a backend name HAProxy and gateway-sync accept: {backend!r}")
    if path is not None and any(c.isspace() or c in "\"'#(),]{}" for c in str(path)):
        raise ValueError(f"the map path must be without spaces, quotes, '#', brackets or commas: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="triton_backend")
    parser.add_argument("--slots", type=int, default=32, help="models routed at once (more fall back to every instance)")
    parser.add_argument("--map-dir", type=Path, required=True)
    parser.add_argument("--gateway-keys-file", type=Path)
    parser.add_argument("--cold-start-url", help="gateway-sync's API (http://127.0.0.1:8095): hold requests for a "
                                                 "model scaled to zero until a copy is up (tarn_cold_start.lua)")
    parser.add_argument("--cold-start-wait-s", type=float, default=60.0,
                        help="longest a request is held for a model scaled to zero, then 503 with Retry-After")
    parser.add_argument("--retry-after-s", type=int, default=5, help="Retry-After of a held request that expired")
    args = parser.parse_args()
    if args.slots < 1:
        parser.error("--slots must be at least 1")
    try:
        path = map_path(args.map_dir, args.backend)
        cold = bool(args.cold_start_url)
        text = ("# in the global section:\n" + global_lines(args.cold_start_url, args.cold_start_wait_s) + "\n\n"
                if cold else "")
        text += "# in the frontend, before default_backend:\n" + frontend_rules(
            args.backend, path, cold_start=cold, retry_after_s=args.retry_after_s) + "\n\n" + \
            slot_backends(args.backend, args.slots, args.gateway_keys_file)
    except ValueError as exc:
        parser.error(str(exc))
    write_empty_map(path)
    print(text, end="")


if __name__ == "__main__":
    main()
