"""The two apps the HTTP bench compares, each served by uvicorn with the same settings:
`authz_app` (tarn-authz on the bench's 1,000 policies) and `bare_app` (FastAPI answering a
constant on the same route)."""
from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/authorize", response_class=PlainTextResponse)
    async def authorize() -> PlainTextResponse:
        return PlainTextResponse("true")

    return app


def authz_app() -> FastAPI:
    from tarn_authz.app import create_app
    from tarn_authz.settings import AuthzSettings

    settings = AuthzSettings.load(ranger_service=os.environ["BENCH_SERVICE"], policy_dir=os.environ["BENCH_POLICY_DIR"],
                                  cache_dir=os.environ["BENCH_CACHE_DIR"], gateway_token=os.environ["BENCH_TOKEN"],
                                  serve_deployments=False, ranger_audit=False, log_json=False, log_level="WARNING")
    return create_app(settings)
