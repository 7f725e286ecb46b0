"""`tarn models`: tarn-am's GET /api/models as a table (each model's copies wanted/loaded,
where, memory, queue time, load time, last error; each instance's memory), or `--json`."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from .am_http import am_http, checked
from .kerberos_login import KeytabLogin

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def models_document(address: str, token: Optional[str], app_id: str, login: Optional[KeytabLogin] = None) -> Dict:
    """What `--json` prints: /api/models with the YARN app id and the AM's address."""
    with am_http(token, login) as http:
        document = checked(http.get(f"{address}/api/models")).json()
    return {**document, "app_id": app_id, "am_address": address}


def render_models(document: Dict) -> str:
    if document.get("note"):
        return f"{document['deployment']}: {document['note']}"
    lines = [f"{part} unavailable: {why}" for part, why in sorted(document.get("unavailable", {}).items())]
    rows = [["MODEL", "COPIES", "WHERE", "MEMORY", "QUEUE", "LOAD", "LAST ERROR"]]
    notes: List[str] = []
    for m in document["models"]:
        where = ", ".join(f"{i} ({c['state']})" for i, c in sorted(m["cells"].items())) or "nowhere"
        copies = f"{m['loaded']}/{m['wanted']}" + (f" +{m['loading']} loading" if m["loading"] else "")
        rows.append([m["name"], copies, where, f"{size(m['memory_bytes'])} {m['memory_source']}",
                     queue_time(m.get("queue_time_us")), seconds(m.get("load_time_s")), m.get("last_error") or "-"])
        if m["missing"]:
            notes.append(f"model {m['name']}: {m['missing']} missing" + "".join(f"; {w}" for w in m["why"]))
    if len(rows) == 1:
        notes.append("no model placed yet (tarn-am's first placement round has not run)")
    lines += table(rows) + notes
    instances = [["INSTANCE", "HOST", "ADDRESS", "STATE", "MEMORY USED"]]
    for i in document["instances"]:
        used = "no telemetry yet" if i.get("capacity_bytes") is None else \
            f"{size(i['used_bytes'])} of {size(i['capacity_bytes'])} ({i['memory_of']})"
        instances.append([i["instance_id"], i.get("host") or "", i.get("address") or "", i["state"], used])
    return "\n".join(lines + [""] + table(instances))


def table(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def size(n: Optional[int]) -> str:
    if n is None:
        return "?"
    value, unit = float(n), 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.0f} B" if unit == 0 else f"{value:.1f} {UNITS[unit]}"


def queue_time(us: Optional[float]) -> str:
    if us is None:
        return "-"
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.1f} ms"


def seconds(s: Optional[float]) -> str:
    return "-" if s is None else f"{s:.1f} s"
