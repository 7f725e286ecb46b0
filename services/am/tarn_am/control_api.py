"""The operators' routes (admin token): POST /scale (a count inside the bounds), POST
/autoscale (pause and resume the policy), POST /model-copies (per-model mode: a model's
copies wanted, kept across a tarn-am restart) and POST /stop (pause, drain every instance, then
mark the deployment's record removed). The rules are target.py's; a refusal is one line."""
from __future__ import annotations

from typing import Awaitable, Callable, Optional

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from tarn_shared.errors import UnavailableError

from . import target as tg
from .api_auth import caller
from .controller import Controller


class ScaleRequest(BaseModel):
    count: int = Field(..., ge=0, le=100_000, description="the new target instance count, inside the bounds")
    reason: str = Field("", max_length=500)


class ScaleResponse(BaseModel):
    previous: int
    desired: int


class AutoscaleRequest(BaseModel):
    enabled: bool = Field(..., description="false pauses the policy (the count holds), true resumes it")
    reason: str = Field("", max_length=500)


class AutoscaleView(BaseModel):
    autoscale: bool  # the policy moves the target now
    paused: bool
    paused_reason: Optional[str] = None
    paused_at: Optional[float] = None
    stopping: bool = False

    @classmethod
    def of(cls, target: tg.Target) -> "AutoscaleView":
        return cls(autoscale=target.policy_moves, paused=target.paused, paused_reason=target.paused_reason or None,
                   paused_at=target.paused_at, stopping=target.stopping)


class CopiesRequest(BaseModel):
    model: str = Field(..., min_length=1, max_length=256)
    copies: int = Field(..., ge=0, le=100_000, description="copies wanted, within the model's min/max")


class CopiesResponse(BaseModel):
    model: str
    copies: int


class StopRequest(BaseModel):
    drain: bool = Field(True, description="false: mark the deployment's record removed now, drained or not")
    reason: str = Field("", max_length=500)


class StopResponse(BaseModel):
    previous: int
    desired: int
    record_removed: bool  # gateway-sync no longer serves the deployment


RemoveRecord = Callable[[], Awaitable[bool]]
STOPPING = {409: {"description": "the deployment is stopping"}}
OUT_OF_BOUNDS = {422: {"description": "a count outside --min-instances..--max-instances (or not a count)"}}
UNSTORED = {503: {"description": "skein's key-value store unreachable: nothing changed"}}


def _refused(exc: Exception) -> HTTPException:
    if isinstance(exc, tg.Stopping):
        return HTTPException(409, detail=str(exc))
    if isinstance(exc, tg.Refusal):
        return HTTPException(422, detail=str(exc))
    return HTTPException(503, detail=str(exc))


def _audited(reason: str, request: Request) -> str:
    """The reason recorded with the change, naming the SPNEGO caller who asked for it."""
    user = caller(request)
    return f"{reason} (by {user})" if user else reason


def control_router(controller: Callable[[], Controller], admin_token, remove_record: RemoveRecord) -> APIRouter:
    router = APIRouter(dependencies=[admin_token], responses=UNSTORED)

    @router.post("/scale", response_model=ScaleResponse, responses={**STOPPING, **OUT_OF_BOUNDS})
    async def scale(body: ScaleRequest, request: Request) -> ScaleResponse:
        c = controller()
        previous = c.desired
        try:
            reason = _audited(body.reason or "requested through /scale", request)
            desired = await c.set_target(body.count, "api", reason)
        except (tg.Refusal, UnavailableError) as exc:
            raise _refused(exc) from None
        return ScaleResponse(previous=previous, desired=desired)

    @router.post("/autoscale", response_model=AutoscaleView, responses=STOPPING)
    async def autoscale(body: AutoscaleRequest, request: Request) -> AutoscaleView:
        try:
            reason = _audited(body.reason or "paused through /autoscale", request)
            target = await controller().set_autoscale(body.enabled, reason)
        except (tg.Refusal, UnavailableError) as exc:
            raise _refused(exc) from None
        return AutoscaleView.of(target)

    @router.post("/stop", response_model=StopResponse)
    async def stop(body: StopRequest, request: Request) -> StopResponse:
        c = controller()
        previous = c.desired
        try:
            await c.stop(_audited(body.reason or "stopped through /stop", request))
        except UnavailableError as exc:
            raise _refused(exc) from None
        removed = await remove_record() if not body.drain else False
        return StopResponse(previous=previous, desired=c.desired, record_removed=removed)

    @router.post("/model-copies", response_model=CopiesResponse, responses={
        409: {"description": "not a --placement per-model deployment"}, **OUT_OF_BOUNDS})
    async def model_copies(body: CopiesRequest) -> CopiesResponse:
        c = controller()
        if c.policy.models is None:
            raise HTTPException(409, detail="copies per model need --placement per-model")
        try:
            copies = await c.policy.models.set_copies(body.model, body.copies)
        except (tg.Refusal, UnavailableError) as exc:
            raise _refused(exc) from None
        c.wake()
        return CopiesResponse(model=body.model, copies=copies)

    return router
