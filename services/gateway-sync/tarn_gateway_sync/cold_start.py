"""Cold starts (a model scaled to zero, issue 16): what HAProxy's tarn_cold_start.lua tells
gateway-sync while it holds a request for a model whose slot has no usable server, and which
of those become a ModelDemanded for tarn-am. Pure: no I/O, the clock passed in.

A demand is refused unless the backend is one this replica routes per model for a deployment
and the model is one that deployment's routing knows (held now, or still keeping its slot at
zero copies); an admitted one is published at most once per ``every_s`` per deployment and
model, and the table of those times is bounded, so a flood of requests or names costs a
bounded amount and never queues."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Literal, Mapping, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field

from .model_routes import MODEL_NAME

DEMAND_EVERY_S = 2.0  # one ModelDemanded per model per this, per replica, however many requests wait
MAX_TRACKED = 10_000  # (deployment, model) pairs remembered; beyond it old ones go, or the demand waits
BACKEND_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"  # render_model_routes.NAME


class ColdStartReport(BaseModel):
    """One POST /cold-start from tarn_cold_start.lua: ``held`` when it starts holding a
    request, ``waiting`` while it still does (every few seconds), then ``served`` or ``expired``."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(pattern=rf"^{BACKEND_NAME}$")
    model: str = Field(pattern=rf"^{MODEL_NAME.pattern}$")
    event: Literal["held", "waiting", "served", "expired"]
    waited_ms: float = Field(0.0, ge=0, le=3_600_000, allow_inf_nan=False)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "published" (to send), "throttled" (one was sent lately), "refused"
    message: str = ""
    deployment: Optional[str] = None


class DemandGate:
    """When each (deployment, model)'s last ModelDemanded went out."""

    def __init__(self, every_s: float = DEMAND_EVERY_S, max_tracked: int = MAX_TRACKED) -> None:
        self.every_s = every_s
        self.max_tracked = max_tracked
        self._sent: Dict[Tuple[str, str], float] = {}

    def judge(self, backend: str, model: str, owners: Mapping[str, str],
              knows: Callable[[str, str, str], bool], now: float) -> Verdict:
        deployment = owners.get(backend)
        if deployment is None:
            return Verdict("refused", f"backend {backend!r} is not routed per model by gateway-sync here")
        if not knows(deployment, backend, model):
            return Verdict("refused", f"model {model!r} is not one deployment {deployment!r} routes on {backend!r}",
                           deployment)
        key = (deployment, model)
        last = self._sent.get(key)
        if last is not None and now - last < self.every_s:
            return Verdict("throttled", f"a demand for {model!r} went out {now - last:.1f}s ago", deployment)
        if key not in self._sent and len(self._sent) >= self.max_tracked:
            self._sent = {k: t for k, t in self._sent.items() if now - t < self.every_s}  # forget the old
            if len(self._sent) >= self.max_tracked:
                return Verdict("throttled", "too many models demanded at once: retried by the gateway", deployment)
        self._sent[key] = now
        return Verdict("published", "", deployment)

    def unsent(self, deployment: str, model: str) -> None:
        """The publish failed: the next report may try again at once."""
        self._sent.pop((deployment, model), None)
