#!/bin/sh
# Entry point of the TARN service images: secrets mounted as files named after the variable
# they fill (/run/secrets/TARN_AUTHZ_GATEWAY_TOKEN, ...) become environment variables, so
# no secret is written in a compose file, an image or `docker inspect`. Then run the command.
set -eu
SECRETS_DIR="${TARN_SECRETS_DIR:-/run/secrets}"
if [ -d "$SECRETS_DIR" ]; then
  for file in "$SECRETS_DIR"/TARN_* "$SECRETS_DIR"/RANGER_*; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    case "$name" in *[!A-Za-z0-9_]*) echo "tarn-entrypoint: ignoring $file (not a variable name)" >&2; continue ;; esac
    value=$(cat "$file")
    export "$name=$value"
  done
fi
exec "$@"
