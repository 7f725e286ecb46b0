"""Redis streams: connecting, publishing, paging through a stream's entries, and trimming
one as far as ``tarn_shared.retention`` allows. Consuming through a consumer group is in
``tarn_shared.consumer``."""
from __future__ import annotations

import asyncio
import random
import socket
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import events
from .errors import UnavailableError
from .retention import ABANDONED_AFTER_MS, GroupPosition, lifecycle_trim_point, trim_point

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

Entry = Tuple[str, Dict[bytes, bytes]]


def as_text(value) -> str:
    """A Redis reply (bytes unless the client decodes) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_range(client: aioredis.Redis, stream: str, *, start: str = "-", end: str = "+",
                     batch: int = 1000, newest_first: bool = False) -> AsyncIterator[Entry]:
    """Every entry of ``stream`` between ``start`` and ``end`` (inclusive), in pages of
    ``batch``: oldest first, or newest first (XREVRANGE)."""
    while True:
        if newest_first:
            page = await client.xrevrange(stream, max=end, min=start, count=batch)
        else:
            page = await client.xrange(stream, min=start, max=end, count=batch)
        for entry_id, fields in page:
            yield as_text(entry_id), fields
        if len(page) < batch:
            return
        last = "(" + as_text(page[-1][0])
        if newest_first:
            end = last
        else:
            start = last


async def group_positions(client: aioredis.Redis, stream: str) -> List[GroupPosition]:
    """Every consumer group on ``stream`` (none when the stream does not exist)."""
    try:
        groups = await client.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return []
        raise
    names = [as_text(g["name"]) for g in groups]
    async with client.pipeline(transaction=False) as pipe:  # one round trip for every group
        for name in names:
            pipe.xinfo_consumers(stream, name)
            pipe.xpending(stream, name)
        replies = await pipe.execute()
    positions = []
    for group, name, consumers, pending in zip(groups, names, replies[::2], replies[1::2]):
        positions.append(GroupPosition(
            name=name, last_delivered_id=as_text(group["last-delivered-id"]),
            oldest_pending_id=as_text(pending["min"]) if pending.get("min") else None,
            idle_ms=min((int(c["idle"]) for c in consumers), default=None)))
    return positions


async def trim(client: aioredis.Redis, stream: str, point: Optional[str]) -> int:
    """XTRIM MINID ~ ``point``: whole stream nodes below it go, never an entry at or after it."""
    if point is None:
        return 0
    return int(await client.xtrim(stream, minid=point, approximate=True))


async def trim_for_groups(client: aioredis.Redis, stream: str, rebuild_from: Optional[str], *,
                          abandoned_after_ms: int = ABANDONED_AFTER_MS,
                          now_ms: Optional[int] = None) -> Optional[str]:
    """Trim ``stream`` to the oldest of ``rebuild_from`` (None: a restarted reader needs
    nothing) and what its live groups still need; returns the trim point (None: nothing went)."""
    groups = await group_positions(client, stream)
    point = trim_point(rebuild_from, groups, _now_ms(now_ms), abandoned_after_ms)
    await trim(client, stream, point)
    return point


async def trim_lifecycle(client: aioredis.Redis, stream: str, snapshot_through: Optional[str], *,
                         abandoned_after_ms: int = ABANDONED_AFTER_MS,
                         now_ms: Optional[int] = None) -> Optional[str]:
    """Trim a lifecycle stream after publishing a snapshot built through ``snapshot_through``."""
    groups = await group_positions(client, stream)
    point = lifecycle_trim_point(snapshot_through, groups, _now_ms(now_ms), abandoned_after_ms)
    await trim(client, stream, point)
    return point


def _now_ms(now_ms: Optional[int]) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms


# A Redis host that vanishes without closing its sockets is found by TCP keepalive within
# about 20 s. A per-command socket timeout would do it too, but costs a timer on every
# call of the hot path; blocking reads carry their own deadline (StreamConsumer).
_KEEPALIVE = {socket.TCP_KEEPIDLE: 5, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3} \
    if hasattr(socket, "TCP_KEEPIDLE") else {}


def connect(url: str, socket_timeout_s: Optional[float] = None, connect_timeout_s: float = 5.0) -> aioredis.Redis:
    """``socket_timeout_s`` bounds every command; leave it unset on hot paths."""
    return aioredis.Redis.from_url(
        url, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s, socket_keepalive=True,
        socket_keepalive_options=_KEEPALIVE, health_check_interval=30,
    )


@dataclass(frozen=True)
class Backoff:
    """Bounded exponential backoff with full jitter; ``rng`` injected for tests."""

    initial_s: float = 0.05
    max_s: float = 2.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        ceiling = min(self.max_s, self.initial_s * (2 ** min(attempt, 30)))
        return ceiling / 2 + rng() * ceiling / 2


class StreamPublisher:
    """XADDs events. Publishes issued while a round trip is under way are sent together in
    the next pipelined one, so many producers sharing a client cost one system call a
    batch, not one each; alone, a publish is one plain round trip. Order is kept."""

    def __init__(self, client: aioredis.Redis, backoff: Backoff = Backoff()) -> None:
        self._redis = client
        self._backoff = backoff
        self._queued: List[Tuple[str, Dict[str, str], Optional[int], asyncio.Future]] = []
        self._flusher: Optional[asyncio.Future] = None

    async def publish(
        self, stream: str, event: events.Event, *, maxlen: Optional[int] = None, retry_for_s: float = 0.0
    ) -> str:
        """XADD the event; ``maxlen`` trims approximately (telemetry). Keeps retrying while
        Redis is unreachable for up to ``retry_for_s``, then raises UnavailableError."""
        fields = events.encode(event)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for_s
        attempt = 0
        while True:
            try:
                return await self._send(stream, fields, maxlen)
            except REDIS_DOWN as exc:
                if loop.time() >= deadline:
                    raise UnavailableError(f"Redis unreachable while publishing to {stream}: {exc}") from None
                await asyncio.sleep(min(self._backoff.delay(attempt), max(0.0, deadline - loop.time())))
                attempt += 1

    async def publish_many(self, stream: str, batch: Sequence[events.Event], *, maxlen: Optional[int] = None) -> List[str]:
        """XADD a batch in order; raises UnavailableError."""
        try:
            return list(await asyncio.gather(*(self._send(stream, events.encode(e), maxlen) for e in batch)))
        except REDIS_DOWN as exc:
            raise UnavailableError(f"Redis unreachable while publishing to {stream}: {exc}") from None

    async def _send(self, stream: str, fields: Dict[str, str], maxlen: Optional[int]) -> str:
        future = asyncio.get_running_loop().create_future()
        self._queued.append((stream, fields, maxlen, future))
        # A task of its own does the sending, so a caller cancelled mid-flight strands no one.
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                replies = await self._send_batch(batch)
            except asyncio.CancelledError:
                for *_, future in batch + self._queued:
                    future.cancel()
                raise
            except Exception as exc:
                replies = [exc] * len(batch)
            for (*_, future), reply in zip(batch, replies):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(as_text(reply))

    async def _send_batch(self, batch: List[Tuple[str, Dict[str, str], Optional[int], asyncio.Future]]) -> List:
        if len(batch) == 1:
            # Alone: a plain XADD, without building and resetting a pipeline on the hot path.
            stream, fields, maxlen, _ = batch[0]
            return [await self._redis.xadd(stream, fields, maxlen=maxlen, approximate=True)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream, fields, maxlen, _ in batch:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
            return await pipe.execute(raise_on_error=False)


