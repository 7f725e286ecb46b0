"""Small real HTTP servers standing in for Triton instances behind HAProxy: each answers
/v2/health/ready and says which port it is (also on /v2/models/{m}/...). Run: python backends.py PORT [PORT...]"""
from __future__ import annotations

import asyncio
import sys

import uvicorn
from fastapi import FastAPI


def backend_app(port: int) -> FastAPI:
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict:
        return {"ready": True}

    @app.get("/whoami")
    def whoami() -> dict:
        return {"port": port}

    @app.api_route("/v2/models/{model}/{rest:path}", methods=["GET", "POST"])
    @app.get("/v2/models/{model}")
    def model(model: str, rest: str = "") -> dict:  # per-model routing: which instance a model's request reached
        return {"port": port, "model": model}

    return app


async def serve(ports) -> None:
    servers = [uvicorn.Server(uvicorn.Config(backend_app(p), host="127.0.0.1", port=p, log_level="warning",
                                             access_log=False)) for p in ports]
    await asyncio.gather(*(s.serve() for s in servers))


if __name__ == "__main__":
    asyncio.run(serve([int(p) for p in sys.argv[1:]]))
