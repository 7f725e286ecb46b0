"""HTTP routes: /authorize (one question, or a batch), /healthz, /metrics."""
from __future__ import annotations

from typing import Annotated, List, Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from .decisions import SCOPE_ANY, SCOPE_SELF, Decider, UnknownAction
from .identity import MAX_NAME, CallerCheck, client_address
from .decision_metrics import AuthzMetrics
from .registry import PolicyRegistry, ServiceState

MAX_MODEL = 1024
MAX_BATCH = 1000


class Services:
    """What the routes need, set up by the app's lifespan."""

    def __init__(self, registry: PolicyRegistry, decider: Decider, callers: CallerCheck,
                 metrics: AuthzMetrics) -> None:
        self.registry = registry
        self.decider = decider
        self.callers = callers
        self.metrics = metrics


async def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]
FormatParam = Annotated[Optional[Literal["text", "json"]], Query(description="Answer format; default: text/plain "
                                                                             "unless Accept asks for JSON")]


class DecisionOut(BaseModel):
    allowed: bool
    audited: bool
    policy_id: int = Field(description="Deciding Ranger policy id; -1 when none decided")
    reason: str
    service: str
    policy_version: Optional[int]
    model: str
    action: str
    user: Optional[str]


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: Optional[str] = Field(None, max_length=MAX_MODEL)
    action: str = Field(max_length=64)
    scope: Literal["self", "any"] = "self"


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checks: List[Check] = Field(max_length=MAX_BATCH)
    user: Optional[str] = Field(None, max_length=MAX_NAME, description="gateway-token callers only")
    groups: List[str] = Field(default_factory=list, max_length=100, description="gateway-token callers only")
    service: Optional[str] = Field(None, max_length=255)
    deployment: Optional[str] = Field(None, max_length=255)


class BatchOut(BaseModel):
    decisions: List[DecisionOut]


router = APIRouter()


def _wants_json(request: Request, fmt: Optional[str]) -> bool:
    if fmt is not None:
        return fmt == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/plain" not in accept


def _state(svc: Services, service: Optional[str], deployment: Optional[str]) -> ServiceState:
    state = svc.registry.resolve(service, deployment)
    if state is not None:
        return state
    if service or deployment:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"not serving Ranger service {service!r}" if service
                            else f"no deployment record {deployment!r} names a Ranger service")
    raise HTTPException(status.HTTP_400_BAD_REQUEST, "several Ranger services are served: name `service` or "
                                                     "`deployment`")


def _model(model: Optional[str], scope: str) -> str:
    if scope == SCOPE_SELF and not model:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "`model` is required (or scope=any)")
    return model or ""


def _param(name: str, description: str, max_length: int, enum: Optional[list] = None) -> dict:
    schema: dict = {"type": "string", "maxLength": max_length}
    if enum:
        schema = {"type": "string", "enum": enum}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


# Declared for the OpenAPI document and read straight from the query string: FastAPI's
# per-parameter machinery costs more than the decision itself on this hot path.
AUTHORIZE_PARAMETERS = [
    _param("model", "Model name (resource `model`); required unless scope=any", MAX_MODEL),
    _param("action", "Access type: infer, metadata or list (the service definition's)", 64),
    _param("user", "User to decide for (gateway-token callers only; else X-TARN-User / X-Knox-Actor-ID)",
           MAX_NAME),
    _param("service", "Ranger service (default: the configured one)", 255),
    _param("deployment", "Deployment whose recorded Ranger service to use", 255),
    _param("scope", "any: may the user do this to any model at all", 8, ["self", "any"]),
    _param("format", "Answer format; default text/plain unless Accept asks for JSON", 8, ["text", "json"]),
]
_LIMITS = {p["name"]: p["schema"].get("maxLength", 8) for p in AUTHORIZE_PARAMETERS}


def _query(request: Request) -> dict:
    query = request.query_params
    values = {}
    for name, limit in _LIMITS.items():
        value = query.get(name)
        if value is not None:
            if len(value) > limit:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, f"`{name}` is longer than {limit} characters")
            values[name] = value
    if values.get("scope", SCOPE_SELF) not in (SCOPE_SELF, SCOPE_ANY):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "`scope` is self or any")
    if values.get("format", "text") not in ("text", "json"):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "`format` is text or json")
    return values


@router.get("/authorize", openapi_extra={"parameters": AUTHORIZE_PARAMETERS}, responses={
    200: {"content": {"text/plain": {"example": "true"}, "application/json": {"schema": DecisionOut.model_json_schema()}},
          "description": "`true` or `false` (text/plain, the seeds' contract), or the decision as JSON"},
    400: {"description": "missing model, unknown action, bad parameter"}, 401: {"description": "bad token"},
    403: {"description": "naming a user without the gateway token"}, 404: {"description": "service not served"}},
    response_class=PlainTextResponse)
async def authorize(request: Request) -> Response:
    svc: Services = request.app.state.services
    params = _query(request)
    identity = svc.callers.identity(request, params.get("user"))
    action = params.get("action")
    if not action:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "`action` is required")
    scope = params.get("scope", SCOPE_SELF)
    model_name = _model(params.get("model"), scope)
    state = _state(svc, params.get("service"), params.get("deployment"))
    try:
        answer = svc.decider.decide(state, identity, model_name, action, scope, client_address(request, identity))
    except UnknownAction as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if _wants_json(request, params.get("format")):
        return JSONResponse(answer.as_json(model_name, action, identity.user))
    return PlainTextResponse("true" if answer.allowed else "false")


@router.post("/authorize", response_model=BatchOut, responses={
    200: {"content": {"text/plain": {"example": "true\nfalse\n"}},
          "description": "One decision per check, in order: JSON, or one `true`/`false` line each when "
                         "Accept is text/plain"},
    400: {"description": "a check with a missing model or an unknown action"}})
async def authorize_batch(request: Request, svc: ServicesDep, batch: BatchIn,
                          format: FormatParam = None) -> Response:
    identity = svc.callers.identity(request, None, batch.user, tuple(g for g in batch.groups if g))
    state = _state(svc, batch.service, batch.deployment)
    client = client_address(request, identity)
    out = []
    for index, check in enumerate(batch.checks):
        model_name = check.model or ""
        if check.scope == SCOPE_SELF and not model_name:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"check {index}: `model` is required (or scope=any)")
        try:
            answer = svc.decider.decide(state, identity, model_name, check.action, check.scope, client)
        except UnknownAction as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"check {index}: {exc}") from None
        out.append(answer.as_json(model_name, check.action, identity.user))
    accept = request.headers.get("accept", "")
    if format == "text" or (format is None and "text/plain" in accept and "application/json" not in accept):
        return PlainTextResponse("".join("true\n" if d["allowed"] else "false\n" for d in out))
    return JSONResponse({"decisions": out})


@router.get("/healthz", responses={
    200: {"description": "status ok, or degraded: a service's latest refresh failed or was refused and it still "
                         "decides with its last good policies (see policy_age_s and last_error)"},
    503: {"description": "unhealthy: a served service denies everything (no policies loaded, or policies older "
                         "than max_policy_age_s)"}})
async def healthz(svc: ServicesDep) -> JSONResponse:
    registry = svc.registry
    status_ = registry.health()
    body = {"status": status_, "default_service": registry.default_service, "services": registry.describe()}
    return JSONResponse(body, status_code=503 if status_ == "unhealthy" else 200)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request, svc: ServicesDep) -> Response:
    svc.callers.trusted(request)  # any accepted token; 401 otherwise
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
