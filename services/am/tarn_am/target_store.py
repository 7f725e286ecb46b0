"""Where the target's controls (target.py) are kept across a tarn-am restart: skein's
key-value store (this application attempt), then Redis (a new attempt's store is empty),
as the count itself is."""
from __future__ import annotations

import asyncio
import logging
from typing import Optional

from .bus import RedisBus
from .target import Target
from .yarn import YarnAdapter

log = logging.getLogger(__name__)
KV_CONTROLS = "tarn.controls"


async def store_controls(yarn: YarnAdapter, bus: RedisBus, target: Target) -> None:
    """skein's store must take it (an error reaches the operator); Redis is best effort."""
    text = target.controls()
    await asyncio.to_thread(yarn.kv_put, KV_CONTROLS, text)
    try:
        await bus.put_controls(text)
    except Exception as exc:  # Redis down: skein's store still has it
        log.warning("could not remember the autoscaling controls in Redis", extra={"error": repr(exc)})


async def restored_controls(yarn: YarnAdapter, bus: RedisBus, target: Target) -> Optional[Target]:
    """``target`` with the controls a previous tarn-am stored, or None when none did."""
    stored = target.with_controls(await asyncio.to_thread(yarn.kv_get, KV_CONTROLS))
    if stored is not None:
        return stored
    try:
        return target.with_controls(await bus.get_controls())
    except Exception:  # Redis down: nothing remembered there
        return None
