"""bench/placement's PNG: tarn's copies per model over time, both systems' instances, and the
queue time of the models that were hot before or after the shift (matplotlib on an Agg canvas)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot(ours, baseline, baseline_label: str, w, out: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out.parent.mkdir(parents=True, exist_ok=True)
    names = [m.name for m in w.models]
    hot = sorted({names[int(i)] for i in np.argsort(-w.before)[:3]} | {names[int(i)] for i in np.argsort(-w.after)[:3]})
    fig = Figure(figsize=(12, 9), dpi=100)
    FigureCanvasAgg(fig)
    copies, fleet, queue = fig.subplots(3, 1, sharex=True)
    t = np.array([row[0] for row in ours.fleet.trace])
    stack = np.array([[row[2][n] for n in names] for row in ours.fleet.trace]).T
    copies.stackplot(t, stack, labels=names, linewidth=0)
    copies.set_ylabel("tarn: copies per model")
    copies.legend(ncol=10, fontsize=6, loc="upper left")
    for result, label in ((ours, "tarn"), (baseline, f"LRU ({baseline_label})")):
        fleet.plot([row[0] for row in result.fleet.trace], [row[1] for row in result.fleet.trace], label=label)
    fleet.set_ylabel("instances")
    fleet.legend(fontsize=8)
    for name in hot:
        for result, style in ((ours, "-"), (baseline, ":")):
            waits = np.array([row[3].get(name, np.nan) for row in result.fleet.trace]) * 1000
            queue.plot([row[0] for row in result.fleet.trace], np.maximum(waits, 1e-2), style,
                       label=f"{name} {result.name}")
    queue.set_yscale("log")
    queue.set_ylabel("mean queue time, ms (5 s samples)")
    queue.set_xlabel(f"seconds (popularity shift at {w.shift_at_s:.0f}s)")
    queue.legend(ncol=4, fontsize=7)
    for ax in (copies, fleet, queue):
        ax.axvline(w.shift_at_s, color="grey", linewidth=0.8)
    fig.suptitle(f"bench/placement: tarn p99 {ours.p99_s * 1000:.0f} ms vs LRU {baseline.p99_s * 1000:.0f} ms")
    fig.tight_layout()
    fig.savefig(out)
    return out
