"""`tarn simulate`'s load traces.

Format (CSV, ``#`` comments allowed, header ``t_s,load`` optional): one row per change, the
load holding until the next row; the last row's time ends the trace. ``load`` is the fleet's
demand in units of one instance's capacity at the scale-up threshold.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple


class TraceError(ValueError):
    pass


@dataclass(frozen=True)
class Trace:
    name: str
    times_s: Tuple[float, ...]
    loads: Tuple[float, ...]

    @property
    def duration_s(self) -> float:
        return self.times_s[-1]

    def load_at(self, t_s: float) -> float:
        return self.loads[max(0, bisect.bisect_right(self.times_s, t_s) - 1)]


def parse_trace(text: str, name: str = "trace") -> Trace:
    times: List[float] = []
    loads: List[float] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.replace(" ", "") == "t_s,load":
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 2:
            raise TraceError(f"{name}:{lineno}: expected 't_s,load', got {raw.strip()!r}")
        try:
            t_s, load = float(cells[0]), float(cells[1])
        except ValueError:
            raise TraceError(f"{name}:{lineno}: not numbers: {raw.strip()!r}") from None
        if not (math.isfinite(t_s) and math.isfinite(load)) or load < 0:
            raise TraceError(f"{name}:{lineno}: load must be a finite number >= 0, got {raw.strip()!r}")
        if times and t_s <= times[-1]:
            raise TraceError(f"{name}:{lineno}: times must increase ({t_s:g} after {times[-1]:g})")
        times.append(t_s)
        loads.append(load)
    if len(times) < 2:
        raise TraceError(f"{name}: a trace needs at least two rows (the last one ends it)")
    if times[0] != 0:
        raise TraceError(f"{name}: the first row must be at t_s=0")
    return Trace(name, tuple(times), tuple(loads))


def load_trace(path: Path) -> Trace:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror}") from None
    return parse_trace(text, Path(path).stem)
