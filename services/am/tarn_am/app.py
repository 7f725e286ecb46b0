"""The AM's REST API: create_app(settings, context) wires routes to the controller's view."""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from typing import Annotated, Dict, List, Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from tarn_shared.auth import token_dependency
from tarn_shared.errors import UnavailableError

from .authz import AuthzClient
from .container_facts import container_facts
from .controller import Controller, TargetError
from .fleet_metrics import FleetCollector
from .history import History
from .history_api import history_router, mount_static
from .prometheus_sd import prometheus_router
from .render import InstanceView, instance_views, instances_text, wants_json
from .settings import TELEMETRY_INTERVAL_S, AmSettings
from .slot_views import SlotView

USER_HEADER = "X-TARN-User"
# Who is asking: set by the gateway in front (Knox) or the dashboard; authz decides on it.
User = Annotated[Optional[str], Header(alias=USER_HEADER, max_length=256)]


@dataclass
class ApiContext:
    """What the routes read: the control loop, the authz client, and this process's facts."""

    controller: Controller
    authz: AuthzClient
    started_at: float = field(default_factory=time.time)
    address: Optional[str] = None
    history: Optional[History] = None  # runtime.py's (history_keeper.py); None: no charts yet


class Action(str, Enum):
    infer = "infer"
    metadata = "metadata"
    list = "list"


class ScaleRequest(BaseModel):
    count: int = Field(..., ge=0, le=100_000, description="the new target instance count")
    reason: str = Field("", max_length=500)


class ScaleResponse(BaseModel):
    previous: int
    desired: int


class Health(BaseModel):
    status: str
    deployment: str
    app_id: str
    pid: int
    uptime_s: float
    loop_rounds: int
    last_round_age_s: Optional[float]
    address: Optional[str]


class ModelView(BaseModel):
    name: str
    instances: Optional[List[str]] = None  # with metadata permission only
    ready_instances: Optional[int] = None


class EventView(BaseModel):
    ts: float
    kind: str
    subject: str
    text: str


class DecisionView(BaseModel):
    ts: float
    source: str
    previous: int
    target: int
    reason: str


class FleetStateView(BaseModel):
    deployment: str
    app_id: str
    desired: int
    running: int
    ready: int
    min_instances: int
    max_instances: int
    autoscale: bool
    blocked: int
    blocked_reason: Optional[str]
    crash_looping: List[str]
    nodes: List[str]
    instances: List[InstanceView]
    models: List[ModelView]
    events: List[EventView]
    decisions: List[DecisionView]
    policy_reason: Optional[str] = None
    user: Optional[str] = None
    slots: List[SlotView] = []  # one per eligible node, with its last failure and why


def create_app(settings: AmSettings, context: ApiContext) -> FastAPI:
    app = FastAPI(title="tarn-am", version="0.1.0",
                  description="TARN application master: instances, scaling, metrics, models, dashboard")
    read_token = Depends(token_dependency(settings.read_secret(), settings.allow_query_token))
    admin_token = Depends(token_dependency(settings.admin_secret(), settings.allow_query_token))
    controller = context.controller
    registry = CollectorRegistry()
    registry.register(FleetCollector(controller))
    # YARN sets the container's user in its environment: the logs links name it.
    logs_user = os.environ.get("USER") or os.environ.get("LOGNAME")

    def rows(allowed_model=None) -> List[InstanceView]:
        return instance_views(controller.view.containers, controller.view.membership.members,
                              controller.view.telemetry, controller.draining(), allowed_model,
                              container_facts(controller.view.containers, time.time(), logs_user))

    async def permitted(models: List[str], action: str, user: Optional[str]) -> Dict[str, bool]:
        try:
            answers = await asyncio.gather(*(context.authz.allowed(m, action, user) for m in models))
        except UnavailableError as exc:
            raise HTTPException(503, detail=str(exc)) from None
        return dict(zip(models, answers))

    def known_models() -> List[str]:
        return sorted({m for member in controller.view.membership.members.values()
                       if member.state.value != "stopped" for m in member.models})

    async def model_views(user: Optional[str]) -> List[ModelView]:
        names = known_models()
        listable = await permitted(names, "list", user)
        visible = [n for n in names if listable[n]]
        detailed = await permitted(visible, "metadata", user)
        views = []
        current = rows()
        for name in visible:
            if not detailed[name]:
                views.append(ModelView(name=name))
                continue
            serving = [r for r in current if name in r.models]
            views.append(ModelView(name=name, instances=[r.address or r.instance_id for r in serving],
                                   ready_instances=sum(1 for r in serving if r.ready)))
        return views

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        # Relative, so it also works behind YARN's proxy (skein's ui.add_page).
        return RedirectResponse("dashboard")

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        last = controller.stats.last_round_at
        return Health(status="ok", deployment=settings.deployment, app_id=controller.yarn.app_id, pid=os.getpid(),
                      uptime_s=round(time.time() - context.started_at, 3), loop_rounds=controller.stats.rounds,
                      last_round_age_s=round(time.time() - last, 3) if last else None, address=context.address)

    @app.get("/instances", dependencies=[read_token], responses={
        200: {"content": {"text/plain": {}, "application/json": {}},
              "description": "host:port per ready instance (text), or every instance (JSON, on Accept)"}})
    async def instances(request: Request) -> Response:
        current = rows()
        if wants_json(request.headers.get("accept")):
            return JSONResponse([r.model_dump() for r in current])
        return PlainTextResponse(instances_text(current))

    @app.get("/metrics", dependencies=[read_token], response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/scale", dependencies=[admin_token], response_model=ScaleResponse,
              responses={422: {"description": "count outside 0..max-instances"}})
    async def scale(body: ScaleRequest) -> ScaleResponse:
        previous = controller.desired
        try:
            desired = await controller.set_target(body.count, "api", body.reason or "requested through /scale")
        except TargetError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        except UnavailableError as exc:
            raise HTTPException(503, detail=str(exc)) from None
        return ScaleResponse(previous=previous, desired=desired)

    @app.get("/authorize", dependencies=[read_token], response_class=PlainTextResponse,
             responses={503: {"description": "authz unreachable"}})
    async def authorize(model: Annotated[str, Query(min_length=1, max_length=256)], action: Action,
                        x_tarn_user: User = None,
                        user: Annotated[Optional[str], Query(max_length=256)] = None) -> PlainTextResponse:
        who = user or x_tarn_user
        answer = await permitted([model], action.value, who)
        return PlainTextResponse("true" if answer[model] else "false")

    @app.get("/models", dependencies=[read_token], response_model=List[ModelView],
             responses={503: {"description": "authz unreachable"}})
    async def models(x_tarn_user: User = None) -> List[ModelView]:
        return await model_views(x_tarn_user)

    @app.get("/api/state", dependencies=[read_token], response_model=FleetStateView,
             responses={503: {"description": "authz unreachable"}})
    async def state(x_tarn_user: User = None) -> FleetStateView:
        model_list = await model_views(x_tarn_user)
        visible = {m.name for m in model_list}
        decision = controller.decision
        return FleetStateView(
            deployment=settings.deployment, app_id=controller.yarn.app_id, desired=controller.desired,
            running=controller.running_count(), ready=len(controller.view.membership.routable()),
            min_instances=settings.min_instances, max_instances=settings.max_instances,
            autoscale=controller.autoscale_enabled,
            blocked=decision.blocked.count if decision and decision.blocked else 0,
            blocked_reason=decision.blocked.reason if decision and decision.blocked else None,
            crash_looping=list(decision.crash_looping) if decision else [],
            nodes=[s.host for s in controller.slots],
            instances=rows(lambda m: m in visible),
            models=model_list,
            events=[EventView(ts=e.ts, kind=e.kind, subject=e.instance_id, text=e.text)
                    for e in reversed(controller.view.recent)][:50],
            decisions=[DecisionView(**d.__dict__) for d in reversed(controller.view.decisions)][:50],
            policy_reason=controller.view.policy_reason,
            user=x_tarn_user,
            slots=controller.slot_views(time.time()),
        )

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(resources.files("tarn_am").joinpath("dashboard.html").read_text())

    app.include_router(prometheus_router(settings.deployment, lambda: controller.view.membership.members,
                                         lambda: context.address, read_token))
    app.include_router(history_router(lambda: context.history or History(1, TELEMETRY_INTERVAL_S), read_token,
                                      lambda names, user: permitted(names, "list", user)))
    mount_static(app)
    return app
