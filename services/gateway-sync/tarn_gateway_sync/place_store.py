"""The ownership (ownership.Claims) kept in Redis beside the records, so that a replica
group started after a deployment moved or was removed still cleans the old place: HAProxy
keeps its servers across gateway-sync restarts, and the record's old version is gone."""
from __future__ import annotations

import logging
from typing import Callable, Dict, Optional

from tarn_shared import events as ev
from tarn_shared.claims import Place
from tarn_shared.streams import REDIS_DOWN, as_text

from .ownership import Claims, place_from_key, place_key
from .sync_metrics import ErrorLog

log = logging.getLogger(__name__)


class PlaceStore:
    def __init__(self, redis, group: str, errors: ErrorLog, admits: Callable[[Place], bool]) -> None:
        self._redis = redis
        self._errors = errors
        self._admits = admits  # whoever writes Redis may have put any place here
        self._key = ev.gateway_places_key(group)
        self._written: Optional[Dict[Place, str]] = None  # None: not restored yet, write nothing

    @property
    def restored(self) -> bool:
        return self._written is not None

    async def restore(self, claims: Claims) -> None:
        """Once, before this replica's first save; while Redis is down, at the next call."""
        if self.restored:
            return
        try:
            stored = await self._redis.hgetall(self._key)
        except REDIS_DOWN as exc:
            self._errors("redis", exc)
            return
        saved: Dict[Place, str] = {}
        for key, owner in stored.items():
            place = place_from_key(as_text(key))
            if place is not None and self._admits(place):
                saved[place] = as_text(owner)
        claims.restore(saved)
        self._written = saved
        if saved:
            log.info(f"restored the ownership of {len(saved)} places", extra={"key": self._key})

    async def save(self, claims: Claims) -> None:
        """Write the ownership when it changed (the leader only: it is the one that cleans)."""
        current = claims.saved()
        if not self.restored or current == self._written:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key)
                if current:
                    pipe.hset(self._key, mapping={place_key(p): owner for p, owner in current.items()})
                await pipe.execute()
        except REDIS_DOWN as exc:
            self._errors("redis", exc)
            return
        self._written = current
