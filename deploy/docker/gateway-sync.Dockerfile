# tarn-gateway-sync: keeps HAProxy (Runtime API) and ZooKeeper equal to the live Triton instances.
#   docker build -f deploy/docker/gateway-sync.Dockerfile -t tarn/gateway-sync .
# Settings: TARN_GATEWAY_SYNC_* (docs/configuration.md). It needs the HAProxy admin socket
# (a shared volume) or a tcp:host:port Runtime API address.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY shared /src/shared
COPY services/gateway-sync /src/services/gateway-sync
RUN pip install /src/shared /src/services/gateway-sync \
 && rm -rf /src \
 && useradd --system --uid 10001 --home-dir /var/lib/tarn --create-home tarn \
 && install -d -o tarn -g tarn /run/haproxy
COPY deploy/docker/tarn-entrypoint.sh /usr/local/bin/tarn-entrypoint
# The health and metrics API listens on every interface inside the container.
ENV TARN_GATEWAY_SYNC_HOST=0.0.0.0 TARN_GATEWAY_SYNC_PORT=8095
USER tarn
EXPOSE 8095
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8095/healthz', timeout=2)"
ENTRYPOINT ["tarn-entrypoint"]
CMD ["tarn-gateway-sync"]
