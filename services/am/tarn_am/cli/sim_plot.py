"""`tarn simulate --plot FILE.png`: demand, instances and overload over time for both policies.

matplotlib is the optional extra ``tarn-am[plot]``: only this module needs it, and the AM's
packed environment has no use for it. Drawn on an Agg canvas, not pyplot: no display, no
global backend switched under the caller.
"""
from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Sequence

COLORS = {"tarn": "tab:blue", "seeds": "tab:orange"}


class PlotError(ValueError):
    pass


def check_target(out: Path) -> None:
    """Fail before simulating: a PNG path, in a folder (or where one can be made), and matplotlib."""
    if out.suffix.lower() != ".png":
        raise PlotError(f"--plot writes a PNG: give a path ending in .png, got {str(out)!r}")
    blocker = next((p for p in out.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise PlotError(f"cannot write plot {out}: {blocker} is not a folder")
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'tarn-am[plot]'") from None


def plot(results: Sequence, out: Path, *, title: str, scale_up: float, scale_down: float,
         max_instances: int) -> Path:
    """One PNG, 1210x770: instances per policy over the demand, and each one's load figure,
    shaded where the model counts it overloaded. ``results`` are simulate.SimResult."""
    check_target(out)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7), dpi=110)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    first = results[0]
    hours = first.times_s[-1] > 3 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")
    x = [t / scale for t in first.times_s]
    top.fill_between(x, first.load, step="post", color="0.85", label="demand (instances needed)")
    for r in results:
        c = COLORS.get(r.policy)
        top.step(x, r.serving, where="post", color=c, lw=1.8,
                 label=f"{r.policy}: serving  ({r.overloaded_s:.0f} s overloaded, {r.instance_s:.0f} instance-s)")
        top.step(x, r.allocated, where="post", color=c, lw=1, ls="--", label=f"{r.policy}: requested")
        bottom.fill_between(x, 0, 1, where=r.over, step="post", color=c, alpha=0.25,
                            transform=bottom.get_xaxis_transform())
        bottom.plot(x, r.figure, color=c, lw=1, label=f"{r.policy}: load figure per instance")
    top.set_ylabel("instances")
    top.set_ylim(0, max(max_instances, max(first.load)) + 1)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(title, fontsize=9)
    bottom.axhline(scale_up, color="red", lw=0.8, ls=":", label="scale-up")
    bottom.axhline(scale_down, color="green", lw=0.8, ls=":", label="scale-down")
    bottom.set_ylabel("load figure per instance\n(shaded: overloaded)")
    bottom.set_xlabel(f"time ({unit})")
    finite = [f for r in results for f in r.figure if math.isfinite(f)]
    bottom.set_ylim(0, min(4.0, max([2.0] + finite) * 1.05))  # a runaway queue would flatten the rest
    bottom.legend(loc="upper left", fontsize=8, ncol=4)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png")
    except OSError as e:
        raise PlotError(f"cannot write plot {out}: {e.strerror or e}") from None
    return out
