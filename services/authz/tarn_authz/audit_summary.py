"""POST /audit/summary: the decisions a gateway served from its cache, counted per (user, action,
model, decision, client address) and sent periodically, audited as Ranger's audit summarisation
does (one event per group, ``event_count`` and ``event_dur_ms``). Gateway token only: the
gateway names the users and client addresses."""
from __future__ import annotations

import ipaddress
from typing import List, Optional

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .api import MAX_MODEL, ServicesDep, _state
from .decisions import CacheHits
from .identity import MAX_NAME, Identity

MAX_ENTRIES = 10_000
MAX_COUNT = 10**12


class HitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=MAX_NAME)
    model: str = Field(min_length=1, max_length=MAX_MODEL)
    action: str = Field(max_length=64)
    groups: List[str] = Field(default_factory=list, max_length=100, description="as the gateway sent them to /authorize")
    allowed: bool
    client: Optional[str] = Field(None, description="the end client's address, as the gateway saw it")
    count: int = Field(ge=1, le=MAX_COUNT)
    first_ms: int = Field(ge=0, description="the first hit, milliseconds since the epoch")
    last_ms: int = Field(ge=0, description="the last hit, milliseconds since the epoch")

    @field_validator("client")
    @classmethod
    def _address(cls, value: Optional[str]) -> Optional[str]:
        if value in (None, ""):
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"client {value!r} is not an IP address") from None

    @model_validator(mode="after")
    def _ordered(self) -> "HitsIn":
        if self.last_ms < self.first_ms:
            raise ValueError("last_ms is before first_ms")
        return self


class SummaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entries: List[HitsIn] = Field(max_length=MAX_ENTRIES)
    service: Optional[str] = Field(None, max_length=255)
    deployment: Optional[str] = Field(None, max_length=255)


class SummaryOut(BaseModel):
    received: int = Field(description="entries received")
    audited: int = Field(description="entries recorded (those whose deciding policy is audited)")


router = APIRouter()


@router.post("/audit/summary", response_model=SummaryOut, responses={
    400: {"description": "an entry with an unknown action"}, 401: {"description": "bad token"},
    403: {"description": "not the gateway token"}, 404: {"description": "service not served"},
    422: {"description": "a malformed entry"}})
async def audit_summary(request: Request, svc: ServicesDep, summary: SummaryIn) -> SummaryOut:
    if not svc.callers.trusted(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only callers holding the gateway token may report cache hits")
    state = _state(svc, summary.service, summary.deployment)
    for index, entry in enumerate(summary.entries):  # all or nothing: check before recording any
        if entry.action not in state.access_types:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"entry {index}: unknown action {entry.action!r} for "
                                                             f"service {state.name!r}")
    audited = 0
    for entry in summary.entries:
        hits = CacheHits(entry.model, entry.action, entry.allowed, entry.client, entry.count,
                         entry.first_ms / 1000, entry.last_ms / 1000)
        identity = Identity(True, entry.user, frozenset(g for g in entry.groups if g))
        audited += svc.decider.summarise(state, identity, hits)
    return SummaryOut(received=len(summary.entries), audited=audited)
