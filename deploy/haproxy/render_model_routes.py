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
GRPC_GATEWAY_KEY_HEADER = f"triton-grpc-protocol-{GATEWAY_KEY_HEADER}"


def map_path(map_dir: Path, backend: str) -> Path:
    return map_dir / f"{backend}.models.map"


def frontend_rules(backend: str, map_file: Path, model_var: str = "") -> str:
    """`/v2/models/{m}/...` to the slot backend the map names for m; everything else (index,
    health, a model with no slot) falls through to the frontend's default_backend. With
    ``model_var`` the model comes from that variable instead (gRPC: tarn_authz_grpc.lua sets
    txn.tarn_grpc_model from the request message)."""
    _check(backend, map_file)
    lines = [f"    # Per-model routing of {backend}: gateway-sync keeps {map_file.name} (model -> slot backend)."]
    if not model_var:
        model_var = "txn.tarn_model"
        lines.append(f"    http-request set-var({model_var}) path,field(4,/) if {{ path_beg /v2/models/ }}")
    lines.append(f"    use_backend %[var({model_var}),map({map_file})] if {{ var({model_var}),map({map_file}) -m found }}")
    return "\n".join(lines)


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
    args = parser.parse_args()
    if args.slots < 1:
        parser.error("--slots must be at least 1")
    try:
        path = map_path(args.map_dir, args.backend)
        text = "# in the frontend, before default_backend:\n" + frontend_rules(args.backend, path) + "\n\n" + \
            slot_backends(args.backend, args.slots, args.gateway_keys_file)
    except ValueError as exc:
        parser.error(str(exc))
    write_empty_map(path)
    print(text, end="")


if __name__ == "__main__":
    main()
