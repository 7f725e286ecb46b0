"""create_app(settings): the health and metrics API; the sync loop runs in its lifespan."""

from contextlib import asynccontextmanager
from typing import Annotated, Dict, List, Optional

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from tarn_shared.auth import token_dependency

from .cold_start import ColdStartReport
from .replica import GatewaySync
from .settings import GatewaySyncSettings
from .sync_metrics import Metrics


class DeploymentHealth(BaseModel):
    routable: int
    draining: int
    authoritative: bool
    refused: List[str] = []  # backends and ZooKeeper paths another deployment owns


class LastReconcile(BaseModel):
    at: float
    triggers: List[str]
    ok: bool
    duration_s: float
    deployments: int


class Health(BaseModel):
    role: str  # "leader" or "standby"
    replica: str
    last_reconcile: Optional[LastReconcile] = None
    deployments: Dict[str, DeploymentHealth]
    zookeeper: Dict[str, str]
    haproxy: Dict[str, str]


def create_app(settings: GatewaySyncSettings, registry: Optional[CollectorRegistry] = None) -> FastAPI:
    registry = registry or CollectorRegistry()
    metrics = Metrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = GatewaySync(settings, metrics)
        app.state.service = service
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="tarn-gateway-sync", version="0.1.0", lifespan=lifespan)
    Authorized = Annotated[None, Depends(token_dependency(
        settings.token.get_secret_value() if settings.token else None, settings.allow_query_token))]

    def service_of(request: Request) -> GatewaySync:
        return request.app.state.service

    Service = Annotated[GatewaySync, Depends(service_of)]

    @app.get("/healthz", response_model=Health)
    def healthz(service: Service) -> Health:
        """Leader or standby, and the last full reconcile; 200 while the process serves."""
        return Health.model_validate(service.health())

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}}, 401: {"description": "missing or invalid token"}})
    def prometheus_metrics(_: Authorized) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/cold-start", responses={202: {"description": "demand published or counted"},
                                        401: {"description": "missing or invalid token"},
                                        404: {"description": "backend or model not routed per model here"},
                                        503: {"description": "Redis unavailable: the gateway reports again"}})
    async def cold_start(report: ColdStartReport, service: Service, _: Authorized) -> JSONResponse:
        """HAProxy's tarn_cold_start.lua, holding a request for a model with no usable copy."""
        verdict = await service.cold_start(report)
        status = {"refused": 404, "failed": 503}.get(verdict.outcome, 202)
        return JSONResponse({"outcome": verdict.outcome, "message": verdict.message,
                             "deployment": verdict.deployment}, status_code=status)

    return app
