#!/bin/sh
# Render HAProxy's configuration (it holds the gateway token: written mode 600 in the run
# directory, never in the image), then run HAProxy in the foreground.
set -eu
run_dir="${HAPROXY_RUN_DIR:-/run/haproxy}"
secrets="${HAPROXY_SECRETS_DIR:-/run/secrets}"
set -- --run-dir "$run_dir" --http-port "${HAPROXY_HTTP_PORT:-8080}" --bind 0.0.0.0 \
  --authz-url "${HAPROXY_AUTHZ_URL:-http://authz:8096}" \
  --gateway-token-file "$secrets/TARN_AUTHZ_GATEWAY_TOKEN" --users-file "$secrets/haproxy-users" \
  --out "$run_dir/haproxy.cfg"
if [ -n "${HAPROXY_GRPC_PORT:-}" ]; then
  set -- "$@" --grpc-port "$HAPROXY_GRPC_PORT"
fi
if [ -n "${HAPROXY_TRUSTED_NETWORKS:-}" ]; then
  for net in $HAPROXY_TRUSTED_NETWORKS; do set -- "$@" --trusted-network "$net"; done
fi
# Each backend's Triton key (docs/deploy.md, "Triton answers only the gateways").
if [ -f "$secrets/gateway-keys.map" ]; then set -- "$@" --gateway-keys-file "$secrets/gateway-keys.map"; fi
python3 "${HAPROXY_TEMPLATE_DIR:-/opt/tarn/haproxy}/render_authz.py" "$@"
# A stale socket from a killed HAProxy would make the bind fail.
rm -f "$run_dir/haproxy-authz.sock"
exec haproxy -db -f "$run_dir/haproxy.cfg"
