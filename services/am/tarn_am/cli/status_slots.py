"""`tarn status`'s lines for the slots that need an operator: each blocked or crash-looping
node with its last failure and why (tarn-am's /api/state ``slots``). Pure."""
from __future__ import annotations

import time
from typing import Dict, List

HEADS = {"crash_loop": "crash loop on {node}: restarts paused",
         "blocked": "blocked on {node}: waiting out the restart backoff"}


def slot_lines(state: Dict) -> List[str]:
    slots = state.get("slots")
    if slots is None:  # a tarn-am from before ``slots``: its list of services is all there is
        looping = state.get("crash_looping") or []
        return [f"crash loop on: {', '.join(looping)}"] if looping else []
    lines = []
    for slot in slots:
        head = HEADS.get(slot.get("state", ""))
        if head is None:
            continue
        node = slot.get("node") or slot.get("service")
        reason = slot.get("blocked_reason")  # YARN did not fill the request there
        line = f"blocked on {node}: {reason}" if reason else head.format(node=node)
        if slot.get("last_failure"):
            at = slot.get("last_failure_at")
            when = f" at {time.strftime('%H:%M:%S', time.localtime(at))}" if at else ""
            line += f"; last failure{when}: {slot['last_failure']}"
        lines.append(line)
    return lines


def model_lines(state: Dict) -> List[str]:
    """Per-model placement's word on each model: copies wanted, held, in flight, missing and why."""
    out = []
    for m in state.get("model_placement") or ():
        moving = "".join(f", {kind} on {', '.join(m[kind])}" for kind in ("loading", "unloading") if m[kind])
        text = f"model {m['name']}: {len(m['held'])}/{m['wanted']} copies on {', '.join(m['held']) or 'none'}{moving}"
        if m["missing"]:
            text += f", {m['missing']} missing"
        out.append(text + "".join(f"; {why}" for why in m["why"]))
    return out
