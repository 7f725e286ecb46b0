"""The agent's own HTTP endpoint: /healthz and /metrics, like every TARN service."""
from __future__ import annotations

from typing import Annotated, Callable, Optional

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from .agent_metrics import AgentStatus, build_registry
from .settings import NodeAgentSettings


def _status(request: Request) -> AgentStatus:
    return request.app.state.status


def _registry(request: Request) -> CollectorRegistry:
    return request.app.state.registry


StatusDep = Annotated[AgentStatus, Depends(_status)]
RegistryDep = Annotated[CollectorRegistry, Depends(_registry)]


def create_app(settings: NodeAgentSettings, status: Optional[AgentStatus] = None,
               gpu_read: Optional[Callable] = None) -> FastAPI:
    app = FastAPI(title="tarn-node-agent", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.status = status or AgentStatus()
    app.state.registry = build_registry(app.state.status, gpu_read)

    @app.get("/healthz")
    def healthz(status: StatusDep) -> dict:
        # The agent process is healthy while it runs; Triton's readiness is reported, not judged here.
        return {"status": "ok", "state": status.state, "triton_up": status.triton_up,
                "container_id": settings.container_id}

    @app.get("/metrics")
    def metrics(registry: RegistryDep) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
