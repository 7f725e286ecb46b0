# HAProxy 2.6 (Debian's, with Lua 5.3) as the policy enforcement point: the configuration is
# rendered at start from deploy/haproxy/haproxy-authz.cfg.tmpl with tarn_authz.lua (HTTP, port
# $HAPROXY_HTTP_PORT) and tarn_authz_grpc.lua (gRPC, $HAPROXY_GRPC_PORT; empty: no gRPC frontend).
#   docker build -f deploy/docker/haproxy.Dockerfile -t tarn/haproxy .
# At start it needs /run/secrets/TARN_AUTHZ_GATEWAY_TOKEN (the token HAProxy presents to
# tarn-authz) and /run/secrets/haproxy-users (`user NAME password CRYPT-HASH` lines).
# gateway-sync reaches the Runtime API at $HAPROXY_RUN_DIR/haproxy-authz.sock: share
# that directory with it and run both as the same uid (10001), the socket is mode 600.
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends haproxy python3-minimal \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --no-create-home tarn \
 && install -d -o tarn -g tarn /run/haproxy
COPY deploy/haproxy/haproxy-authz.cfg.tmpl deploy/haproxy/tarn_authz.lua deploy/haproxy/tarn_authz_grpc.lua \
     deploy/haproxy/render_authz.py /opt/tarn/haproxy/
COPY deploy/docker/haproxy-entrypoint.sh /usr/local/bin/haproxy-entrypoint
ENV HAPROXY_RUN_DIR=/run/haproxy HAPROXY_HTTP_PORT=8080 HAPROXY_GRPC_PORT=8081 HAPROXY_AUTHZ_URL=http://authz:8096
USER tarn
EXPOSE 8080 8081
ENTRYPOINT ["haproxy-entrypoint"]
