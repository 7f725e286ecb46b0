# tarn-authz: the Ranger policy decision point for Triton models (GET /authorize).
#   docker build -f deploy/docker/authz.Dockerfile -t tarn/authz .
# Settings: TARN_AUTHZ_* and the seeds' RANGER_SERVICE / RANGER_APP_ID / RANGER_AUDIT
# (docs/configuration.md). Mount a volume on /var/lib/tarn/authz so the last good policy
# download survives a restart while Ranger Admin is down.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Kerberos (TARN_AUTHZ_RANGER_AUTH=kerberos): kinit and the GSSAPI library httpx-gssapi loads.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends krb5-user libgssapi-krb5-2 \
 && rm -rf /var/lib/apt/lists/*
COPY shared /src/shared
COPY services/authz /src/services/authz
RUN pip install /src/shared /src/services/authz \
 && rm -rf /src \
 && useradd --system --uid 10001 --home-dir /var/lib/tarn --create-home tarn \
 && install -d -o tarn -g tarn /var/lib/tarn/authz/policycache /var/log/tarn
COPY deploy/docker/tarn-entrypoint.sh /usr/local/bin/tarn-entrypoint
ENV TARN_AUTHZ_HOST=0.0.0.0 TARN_AUTHZ_PORT=8096 TARN_AUTHZ_CACHE_DIR=/var/lib/tarn/authz/policycache
USER tarn
VOLUME ["/var/lib/tarn/authz"]
EXPOSE 8096
# /healthz is 503 while a served Ranger service has no policies (fail closed): unhealthy then.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8096/healthz', timeout=2)"
ENTRYPOINT ["tarn-entrypoint"]
CMD ["tarn-authz"]
