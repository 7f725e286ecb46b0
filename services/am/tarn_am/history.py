"""The fleet's recent past, for the dashboard's charts: a bounded ring of points (one per
telemetry interval: target/running/ready, each instance's load, queue time and request
rate, each model's request rate) and the scaling decisions to mark on the timeline.

Pure: no I/O, no clock. ``point_of`` makes a point from what the view holds; ``History``
keeps the last ``capacity`` of them; ``dump``/``load`` are the format kept in Redis
(versioned JSON, capped in bytes); ``columns`` is what /api/history serves (aligned
arrays, as the chart library draws them).
"""
from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from tarn_shared.events import TelemetrySample

FORMAT_VERSION = 1
DEFAULT_WINDOW_S = 3600.0
MAX_INSTANCES = 64  # per point: a larger fleet charts its first 64 instances (by id)
MAX_MODELS = 32  # per point, the busiest ones
MAX_MARKERS = 200
MAX_REASON = 200
MAX_DUMP_BYTES = 4_000_000  # what one Redis value may hold; the oldest points go first
_COMPACT = (",", ":")
CLOCK_STEP_INTERVALS = 10


@dataclass(frozen=True)
class InstancePoint:
    load: Optional[float] = None  # None: Triton down, no load figure
    queue_ms: Optional[float] = None  # queue time per request, weighted by each model's rate
    request_rate: Optional[float] = None  # requests per second, all models


@dataclass(frozen=True)
class Point:
    ts: float
    target: int
    running: int
    ready: int
    instances: Mapping[str, InstancePoint] = field(default_factory=dict)
    models: Mapping[str, float] = field(default_factory=dict)  # model -> requests per second, fleet-wide


@dataclass(frozen=True)
class Marker:
    """A move of the target, as the view's TargetChange records it."""

    ts: float
    source: str
    previous: int
    target: int
    reason: str = ""

    @property
    def key(self) -> Tuple[float, str, int, int]:
        return (round(self.ts, 3), self.source, self.previous, self.target)


def capacity_for(window_s: float, interval_s: float) -> int:
    """Points that cover ``window_s`` at one per ``interval_s``."""
    if window_s <= 0 or interval_s <= 0:
        raise ValueError(f"window ({window_s}) and interval ({interval_s}) must be positive")
    return max(1, math.ceil(window_s / interval_s))


def _r(value: Optional[float]) -> Optional[float]:
    """Three decimals; not finite (a broken exporter) counts as no figure: JSON has no inf."""
    return round(float(value), 3) if value is not None and math.isfinite(value) else None


def instance_point(sample: TelemetrySample) -> InstancePoint:
    rates = [m.request_rate_per_s for m in sample.models]
    total = sum(rates)
    if sample.models:
        queue = (sum(m.queue_time_per_request_us * m.request_rate_per_s for m in sample.models) / total if total
                 else sum(m.queue_time_per_request_us for m in sample.models) / len(sample.models))
    else:
        queue = None
    return InstancePoint(load=_r(sample.load) if sample.triton_up else None,
                         queue_ms=_r(queue / 1000) if queue is not None else None,
                         request_rate=_r(total) if sample.models else None)


def point_of(ts: float, target: int, running: int, ready: int, samples: Iterable[TelemetrySample]) -> Point:
    """One point from the latest fresh sample of each live instance."""
    latest: Dict[str, TelemetrySample] = {}
    for sample in samples:
        latest[sample.instance_id] = sample
    instances = {i: instance_point(latest[i]) for i in sorted(latest)[:MAX_INSTANCES]}
    models: Dict[str, float] = {}
    for sample in latest.values():
        for model in sample.models:
            models[model.name] = models.get(model.name, 0.0) + model.request_rate_per_s
    busiest = sorted(models, key=lambda m: (-models[m], m))[:MAX_MODELS]
    return Point(round(ts, 3), target, running, ready, instances, {m: _r(models[m]) for m in sorted(busiest)})


class History:
    def __init__(self, capacity: int, interval_s: float) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.interval_s = interval_s
        self.points: Deque[Point] = deque(maxlen=capacity)
        self.markers: Deque[Marker] = deque(maxlen=MAX_MARKERS)
        self._marked: set = set()

    @property
    def capacity(self) -> int:
        return self.points.maxlen or 0

    @property
    def window_s(self) -> float:
        return self.capacity * self.interval_s

    def add(self, point: Point) -> None:
        """Points arrive in time order: one not after the last is dropped, unless the clock
        stepped back further than a few intervals, which starts the series again."""
        if self.points and point.ts <= self.points[-1].ts:
            if self.points[-1].ts - point.ts <= CLOCK_STEP_INTERVALS * self.interval_s:
                return
            self.points.clear()
        self.points.append(point)

    def mark(self, changes: Iterable) -> int:
        """Records the target changes not seen yet (TargetChange or Marker); returns how many."""
        added = 0
        for change in sorted(changes, key=lambda c: c.ts):
            marker = Marker(round(change.ts, 3), change.source, change.previous, change.target,
                            (change.reason or "")[:MAX_REASON])
            if marker.key in self._marked:
                continue
            if len(self.markers) == self.markers.maxlen:
                self._marked.discard(self.markers[0].key)
            self.markers.append(marker)
            self._marked.add(marker.key)
            added += 1
        return added

    # -- the format kept in Redis ------------------------------------------------------
    def dump(self, max_bytes: int = MAX_DUMP_BYTES) -> str:
        """Compact JSON: instance and model names once, in tables; one array per point, naming
        them by index. Over ``max_bytes`` the oldest points are left out (one pass: it runs
        on the event loop)."""
        ids: Dict[str, int] = {}
        names: Dict[str, int] = {}
        encoded = [json.dumps(_encode(p, ids, names), separators=_COMPACT) for p in self.points]
        head = json.dumps({"v": FORMAT_VERSION, "interval_s": self.interval_s, "instances": list(ids),
                           "models": list(names), "markers": [[m.ts, m.source, m.previous, m.target, m.reason]
                                                              for m in self.markers]}, separators=_COMPACT)
        size, kept = len(head) + len(',"points":[]'), []
        for text in reversed(encoded):  # ASCII (json escapes the rest): characters are bytes
            size += len(text) + 1
            if size > max_bytes:
                break
            kept.append(text)
        return head[:-1] + ',"points":[' + ",".join(reversed(kept)) + "]}"

    @classmethod
    def load(cls, text: str, capacity: int, interval_s: float, now: float) -> "History":
        """A dump read back; points and markers older than the window are left out.
        Raises ValueError, in one line, on anything that is not a dump of this format."""
        history = cls(capacity, interval_s)
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"unreadable history: {exc}") from None
        if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
            raise ValueError(f"unreadable history: not a version {FORMAT_VERSION} dump")
        # Outside the window, or ahead of this clock (another node's): left out.
        oldest, newest = now - history.window_s, now + interval_s
        try:
            ids, names = list(data.get("instances", [])), list(data.get("models", []))
            for raw in data.get("points", []):
                point = _decode(raw, ids, names)
                if oldest <= point.ts <= newest:
                    history.add(point)
            history.mark(Marker(float(m[0]), str(m[1]), int(m[2]), int(m[3]), str(m[4]))
                         for m in data.get("markers", []) if oldest <= float(m[0]) <= newest)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"unreadable history: {type(exc).__name__}: {exc}") from None
        return history

    # -- what the dashboard reads ------------------------------------------------------
    def columns(self, since: Optional[float] = None, visible_model=None) -> dict:
        """Aligned arrays (one entry per point, null where an instance had no figure), the
        instances and models named in any of the points, and the markers (after ``since``)."""
        points = [p for p in self.points if since is None or p.ts > since]
        instance_ids = sorted({i for p in points for i in p.instances})
        model_names = sorted({m for p in points for m in p.models if visible_model is None or visible_model(m)})
        return {
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "ts": [p.ts for p in points],
            "target": [p.target for p in points],
            "running": [p.running for p in points],
            "ready": [p.ready for p in points],
            "instances": {i: _instance_columns(points, i) for i in instance_ids},
            "models": {m: {"request_rate": [p.models.get(m) for p in points]} for m in model_names},
            "decisions": [asdict(m) for m in self.markers if since is None or m.ts > since],
        }


def _instance_columns(points: Sequence[Point], instance_id: str) -> Dict[str, List[Optional[float]]]:
    cells = [p.instances.get(instance_id) for p in points]
    return {name: [getattr(c, name) if c else None for c in cells] for name in ("load", "queue_ms", "request_rate")}


def _encode(point: Point, ids: Dict[str, int], names: Dict[str, int]) -> list:
    instances = [[ids.setdefault(i, len(ids)), v.load, v.queue_ms, v.request_rate] for i, v in point.instances.items()]
    models = [[names.setdefault(m, len(names)), rate] for m, rate in point.models.items()]
    return [point.ts, point.target, point.running, point.ready, instances, models]


def _number(value) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _named(index, table: Sequence) -> str:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(table):
        raise IndexError(f"{index!r} names no entry of a table of {len(table)}")
    return str(table[index])


def _decode(raw: list, ids: Sequence, names: Sequence) -> Point:
    ts, target, running, ready, instances, models = raw
    return Point(float(ts), int(target), int(running), int(ready),
                 {_named(i, ids): InstancePoint(*(_number(x) for x in figures[:3])) for i, *figures in instances},
                 {_named(m, names): _number(rate) for m, rate in models})
