"""gateway-sync's replies on a deployment's lifecycle stream, read after one of our own entries:
a plain XREAD (a bounded wait for replies, not a consumer of the stream), which the drain and
the model unload handshakes share."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from redis.asyncio import Redis

from tarn_shared import events as ev
from tarn_shared.errors import SchemaError
from tarn_shared.streams import REDIS_DOWN


async def lifecycle_events(redis: Redis, deployment: str, after_id: str) -> AsyncIterator[ev.Event]:
    """Each decodable event after ``after_id``, for ever; waits out Redis outages."""
    stream = ev.lifecycle_stream(deployment)
    last = after_id
    while True:
        try:
            reply = await redis.xread({stream: last}, block=500, count=100)
        except REDIS_DOWN:
            await asyncio.sleep(0.5)
            continue
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id
                try:
                    yield ev.decode(fields)
                except SchemaError:
                    continue
