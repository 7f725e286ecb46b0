"""Where operators' copies per model (POST /model-copies, --placement per-model) are kept
across a tarn-am restart: skein's key-value store (this application attempt), then Redis (a
new attempt's store is empty), as the target and its controls are (target_store.py)."""
from __future__ import annotations

import asyncio
import logging
from typing import Dict, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tarn_shared.errors import TarnError

from .bus import RedisBus
from .yarn import YarnAdapter

log = logging.getLogger(__name__)
KV_MODEL_COPIES = "tarn.model-copies"


class StoredCopies(BaseModel):
    model_config = ConfigDict(extra="ignore")
    copies: Dict[str, int] = Field(default_factory=dict)

    @classmethod
    def decoded(cls, text: Optional[str]) -> Optional[Dict[str, int]]:
        """The counts in ``text``; None when it is missing or unreadable (nothing to restore)."""
        if not text:
            return None
        try:
            return {m: c for m, c in cls.model_validate_json(text).copies.items() if c >= 0}
        except ValidationError:
            log.warning("unreadable stored model copies ignored", extra={"stored": text[:200]})
            return None


class CopiesStore:
    def __init__(self, yarn: YarnAdapter, bus: RedisBus) -> None:
        self.yarn = yarn
        self.bus = bus

    async def store(self, wanted: Mapping[str, int]) -> None:
        """skein's store must take it (its error reaches the operator: nothing changed); Redis is best effort."""
        text = StoredCopies(copies=dict(wanted)).model_dump_json()
        await asyncio.to_thread(self.yarn.kv_put, KV_MODEL_COPIES, text)
        try:
            await self.bus.put_model_copies(text)
        except Exception as exc:  # Redis down: skein's store still has it
            log.warning("could not remember the model copies in Redis", extra={"error": repr(exc)})

    async def restored(self) -> Optional[Dict[str, int]]:
        """What a previous tarn-am stored ({} when nothing was); None when neither place could
        say (skein unreachable and Redis without them, or skein without them and Redis down): ask again."""
        try:
            kept = StoredCopies.decoded(await asyncio.to_thread(self.yarn.kv_get, KV_MODEL_COPIES))
            skein_answered = True
        except TarnError:
            kept, skein_answered = None, False
        if kept is not None:
            return kept
        try:
            kept = StoredCopies.decoded(await self.bus.get_model_copies())
        except Exception:  # Redis down: a new attempt's counts may be there, ask again
            return None
        if kept is not None:
            return kept
        return {} if skein_answered else None
