"""The AM's REST API: create_app(settings, context) wires routes to the controller's view."""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from typing import Annotated, Awaitable, Callable, Dict, List, Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from tarn_shared.errors import UnavailableError

from .am_health import bus_check, health_checks, healthy
from .api_auth import api_guards, caller
from .authz import AuthzClient
from .container_facts import container_facts
from .control_api import control_router
from .controller import Controller
from .fleet_metrics import FleetCollector
from .history import History
from .history_api import history_router, mount_static
from .model_round import ModelLine
from .models_api import models_router
from .prometheus_sd import prometheus_router
from .render import InstanceView, instance_views, instances_text, wants_json
from .settings import TELEMETRY_INTERVAL_S, AmSettings
from .slot_views import SlotView

USER_HEADER = "X-TARN-User"


def asking_user(request: Request, x_tarn_user: Annotated[Optional[str], Header(alias=USER_HEADER,
                                                                              max_length=256)] = None):
    """Who is asking, for authz: a SPNEGO caller is who its ticket says (its header is ignored);
    otherwise the header the gateway in front (Knox) or the dashboard sets."""
    return caller(request) or x_tarn_user


User = Annotated[Optional[str], Depends(asking_user)]


@dataclass
class ApiContext:
    """What the routes read: the control loop, the authz client, and this process's facts."""

    controller: Controller
    authz: AuthzClient
    started_at: float = field(default_factory=time.time)
    address: Optional[str] = None
    history: Optional[History] = None  # runtime.py's (history_keeper.py); None: no charts yet
    remove_record: Optional[Callable[[], Awaitable[bool]]] = None  # record_keeper.py's; None: no record kept


class Action(str, Enum):
    infer = "infer"
    metadata = "metadata"
    list = "list"


class CheckView(BaseModel):
    ok: bool
    detail: str
    age_s: Optional[float] = None  # since the last good pass


class Health(BaseModel):
    status: str  # "ok", or "unhealthy" (503) when any check fails
    checks: Dict[str, CheckView] = {}  # bus, yarn, reconcile
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
    autoscale: bool  # the policy moves the target now (not paused, not stopping)
    autoscale_paused: bool = False
    autoscale_paused_reason: Optional[str] = None
    autoscale_paused_at: Optional[float] = None
    stopping: bool = False  # `tarn stop` under way
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
    # Parts left out, and why: "models" (the model table and each instance's models) while authz is down.
    unavailable: Dict[str, str] = {}
    placement: str = "all-models"
    model_placement: List[ModelLine] = []  # per-model mode: each model's copies wanted, held, missing and why


def create_app(settings: AmSettings, context: ApiContext) -> FastAPI:
    app = FastAPI(title="tarn-am", version="0.1.0",
                  description="TARN application master: instances, scaling, metrics, models, dashboard")
    read_check, admin_check, page_check = api_guards(settings)
    read_token, admin_token = Depends(read_check), Depends(admin_check)
    controller = context.controller
    registry = CollectorRegistry()
    registry.register(FleetCollector(controller))
    # YARN sets the container's user in its environment: the logs links name it.
    logs_user = os.environ.get("USER") or os.environ.get("LOGNAME")

    def rows(allowed_model=None) -> List[InstanceView]:
        return instance_views(controller.view.containers, controller.view.membership.members,
                              controller.view.telemetry, controller.draining(), allowed_model,
                              container_facts(controller.view.containers, time.time(), logs_user))

    async def asked(models: List[str], action: str, user: Optional[str]) -> Dict[str, bool]:
        """authz's answers; UnavailableError when it cannot answer."""
        answers = await asyncio.gather(*(context.authz.allowed(m, action, user) for m in models))
        return dict(zip(models, answers))

    def known_models() -> List[str]:
        return sorted({m for member in controller.view.membership.members.values()
                       if member.state.value != "stopped" for m in member.models})

    async def model_views(user: Optional[str]) -> List[ModelView]:
        names = known_models()
        listable = await asked(names, "list", user)
        visible = [n for n in names if listable[n]]
        detailed = await asked(visible, "metadata", user)
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

    async def remove_record() -> bool:
        return await context.remove_record() if context.remove_record else False

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        # Relative, so it also works behind YARN's proxy (skein's ui.add_page).
        return RedirectResponse("dashboard")

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": (
        "the bus, the YARN connection or the reconcile loop is broken (checks says which)")}})
    async def healthz() -> Response:
        now, stats = time.time(), controller.stats
        bus = bus_check(controller.bus.health(now), [c.health for c in controller.bus.consumers], now)
        checks = health_checks(now, bus, stats.phase_ok_at, stats.phase_error, settings.loop_interval_s)
        ok = healthy(checks)
        last = stats.last_round_at
        views = {name: CheckView(ok=c.ok, detail=c.detail, age_s=c.age_s) for name, c in checks.items()}
        health = Health(status="ok" if ok else "unhealthy", checks=views,
                        deployment=settings.deployment, app_id=controller.yarn.app_id, pid=os.getpid(),
                        uptime_s=round(now - context.started_at, 3), loop_rounds=stats.rounds,
                        last_round_age_s=round(now - last, 3) if last else None, address=context.address)
        return JSONResponse(health.model_dump(), status_code=200 if ok else 503)

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

    @app.get("/authorize", dependencies=[read_token], response_class=PlainTextResponse,
             responses={503: {"description": "no authz configured, authz unreachable, or authz refused the AM"}})
    async def authorize(request: Request, model: Annotated[str, Query(min_length=1, max_length=256)],
                        action: Action, x_tarn_user: User,
                        user: Annotated[Optional[str], Query(max_length=256)] = None) -> PlainTextResponse:
        who = x_tarn_user if caller(request) else user or x_tarn_user  # a ticket's holder asks as itself
        try:  # fails closed: no answer from authz is never a "true"
            answer = await context.authz.decide(model, action.value, who)
        except UnavailableError as exc:
            raise HTTPException(503, detail=str(exc)) from None
        return PlainTextResponse("true" if answer else "false")

    @app.get("/models", dependencies=[read_token], response_model=List[ModelView],
             responses={503: {"description": "authz unreachable, or authz refused the AM"}})
    async def models(x_tarn_user: User) -> List[ModelView]:
        try:
            return await model_views(x_tarn_user)
        except UnavailableError as exc:
            raise HTTPException(503, detail=str(exc)) from None

    @app.get("/api/state", dependencies=[read_token], response_model=FleetStateView)
    async def state(x_tarn_user: User) -> FleetStateView:
        unavailable: Dict[str, str] = {}
        try:
            model_list = await model_views(x_tarn_user)
        except UnavailableError as exc:  # the rest does not depend on authz: it is still shown
            model_list, unavailable["models"] = [], f"{exc}: models are left out"
        visible = {m.name for m in model_list}
        placed = controller.policy.models.lines() if controller.policy.models else []
        placement_visible = visible
        if placed and "models" in unavailable:
            unavailable["model_placement"] = unavailable["models"]
        elif placed:  # model_views asked about the models instances hold; only the others (at 0 copies) here
            unasked = sorted({line.name for line in placed} - set(known_models()))
            try:
                placement_visible = visible | {n for n, ok in (await asked(unasked, "list", x_tarn_user)).items()
                                               if ok}
            except UnavailableError as exc:
                placement_visible, unavailable["model_placement"] = set(), f"{exc}: models are left out"
        decision, target = controller.decision, controller.target
        return FleetStateView(
            deployment=settings.deployment, app_id=controller.yarn.app_id, desired=controller.desired,
            running=controller.running_count(), ready=len(controller.view.membership.routable()),
            min_instances=settings.min_instances, max_instances=settings.max_instances,
            autoscale=target.policy_moves, autoscale_paused=target.paused,
            autoscale_paused_reason=target.paused_reason or None, autoscale_paused_at=target.paused_at,
            stopping=target.stopping,
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
            unavailable=unavailable,
            placement=settings.placement,
            model_placement=[line for line in placed if line.name in placement_visible],
        )

    @app.get("/dashboard", response_class=HTMLResponse, dependencies=[Depends(page_check)])
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(resources.files("tarn_am").joinpath("dashboard.html").read_text())

    app.include_router(prometheus_router(settings.deployment, lambda: controller.view.membership.members,
                                         lambda: context.address, read_token))
    app.include_router(control_router(lambda: controller, admin_token, remove_record))
    app.include_router(history_router(lambda: context.history or History(1, TELEMETRY_INTERVAL_S), read_token,
                                      lambda names, user: asked(names, "list", user)))
    app.include_router(models_router(lambda: controller, read_token, lambda names, user: asked(names, "list", user)))
    mount_static(app)
    return app
