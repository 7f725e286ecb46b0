"""GET /api/models: each model of a --placement per-model deployment, where it is and how it
does (model_table.py); `tarn models` and the dashboard's model × instance matrix read it."""
from __future__ import annotations

import time
from typing import Annotated, Awaitable, Callable, Dict, List, Optional

from fastapi import APIRouter, Header

from tarn_shared.errors import UnavailableError

from .fleet_metrics import TELEMETRY_MAX_AGE_S  # an older sample's queue time is no longer shown
from .model_table import ModelsView, inputs_of, models_view

# The same header as app.py's: who is asking; models they may not list are left out.
User = Annotated[Optional[str], Header(alias="X-TARN-User", max_length=256)]
ListPermitted = Callable[[List[str], Optional[str]], Awaitable[Dict[str, bool]]]


def models_router(controller: Callable[[], object], read_token, list_permitted: ListPermitted) -> APIRouter:
    router = APIRouter()

    @router.get("/api/models", dependencies=[read_token], response_model=ModelsView,
                description="Per model (--placement per-model): copies wanted and loaded, a cell per instance "
                            "(state, measured memory, load time, error), memory measured or declared, queue time "
                            "and last error; each instance's memory. An all-models deployment answers no rows and "
                            "a note. Models the caller (X-TARN-User) may not list are left out; while authz "
                            "cannot say, none is shown and `unavailable` says why.")
    async def get_models(x_tarn_user: User = None) -> ModelsView:
        c = controller()
        inputs = inputs_of(c, time.time(), TELEMETRY_MAX_AGE_S)
        deployment, placement = c.settings.deployment, c.settings.placement
        if inputs is None:
            return models_view(deployment, placement, None)
        names = [line.name for line in inputs.lines]
        unavailable: Dict[str, str] = {}
        try:
            listable = await list_permitted(names, x_tarn_user) if names else {}
        except UnavailableError as exc:  # the instances do not depend on authz: still shown
            listable, unavailable["models"] = {}, f"{exc}: models are left out"
        return models_view(deployment, placement, inputs, listable, unavailable)

    return router
