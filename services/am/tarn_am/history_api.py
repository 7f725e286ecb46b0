"""GET /api/history: the dashboard's charts (history.py's columns), and /static/: the
charting library it draws them with, vendored (static/README.md), so nothing comes
from a CDN and the dashboard works offline."""
from __future__ import annotations

from typing import Annotated, Awaitable, Callable, Dict, List, Optional

from fastapi import APIRouter, FastAPI, Header, Query
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from tarn_shared.errors import UnavailableError

from .history import History

# The same header as app.py's: who is asking; models they may not list are left out.
User = Annotated[Optional[str], Header(alias="X-TARN-User", max_length=256)]
ListPermitted = Callable[[List[str], Optional[str]], Awaitable[Dict[str, bool]]]


class InstanceSeries(BaseModel):
    load: List[Optional[float]]
    queue_ms: List[Optional[float]]
    request_rate: List[Optional[float]]


class ModelSeries(BaseModel):
    request_rate: List[Optional[float]]


class MarkerView(BaseModel):
    ts: float
    source: str
    previous: int
    target: int
    reason: str


class HistoryView(BaseModel):
    """Aligned arrays: entry k of every list belongs to ``ts[k]``; null where an instance
    had no figure (not running yet, Triton down, no fresh telemetry)."""

    interval_s: float
    window_s: float
    ts: List[float]
    target: List[int]
    running: List[int]
    ready: List[int]
    instances: Dict[str, InstanceSeries]
    models: Dict[str, ModelSeries]
    decisions: List[MarkerView]
    unavailable: Dict[str, str] = {}  # "models": authz could not say which to show, so none is


def history_router(history: Callable[[], History], read_token, list_permitted: ListPermitted) -> APIRouter:
    router = APIRouter()

    @router.get("/api/history", dependencies=[read_token], response_model=HistoryView)
    async def get_history(since: Annotated[Optional[float], Query(ge=0, le=1e11, description=(
                              "epoch seconds: only the points after it"))] = None,
                          x_tarn_user: User = None) -> HistoryView:
        current = history()
        names = sorted({m for p in current.points for m in p.models})
        unavailable: Dict[str, str] = {}
        try:
            listable = await list_permitted(names, x_tarn_user) if names else {}
        except UnavailableError as exc:  # the fleet's charts do not depend on authz: still drawn
            listable, unavailable["models"] = {}, f"{exc}: models are left out"
        return HistoryView(**current.columns(since, visible_model=lambda m: listable.get(m, False)),
                           unavailable=unavailable)

    return router


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(packages=[("tarn_am", "static")]), name="static")
