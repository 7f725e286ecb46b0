"""`tarn status` output: the table, `--json` for scripts, `--watch` until Ctrl-C."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, Dict, Optional, TextIO

from .am_http import am_http, checked
from .exits import EXIT_OK, classify

CLEAR_SCREEN = "\x1b[H\x1b[2J"


def status_document(state: Dict, app_id: str, address: str) -> Dict:
    """What `--json` prints: tarn-am's /api/state, with the YARN app id and the AM's address."""
    return {**state, "app_id": state.get("app_id") or app_id, "am_address": address}


def as_json(document: Dict, one_line: bool = False) -> str:
    return json.dumps(document, separators=(",", ":")) if one_line else json.dumps(document, indent=2)


def ended(text: str) -> str:
    """Every output ends with exactly one newline."""
    return text.rstrip("\n") + "\n"


def watch_frame(body: str, interval_s: float, now: float, tty: bool) -> str:
    """One refresh of `--watch`: on a terminal the screen is redrawn, elsewhere frames follow each other."""
    header = f"every {interval_s:g} s, Ctrl-C to stop: {time.strftime('%H:%M:%S', time.localtime(now))}"
    return (CLEAR_SCREEN if tty else "") + ended(f"{header}\n{body}") + ("" if tty else "\n")


def watch(frame: Callable[[], str], interval_s: float, out: TextIO,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Write ``frame()`` every ``interval_s`` until Ctrl-C, which ends it with exit code 0."""
    try:
        while True:
            out.write(frame())
            out.flush()
            sleep(interval_s)
    except KeyboardInterrupt:
        return EXIT_OK


def show_status(args: argparse.Namespace, app_id: str, address: str, token: Optional[str],
                render: Callable[[Dict, str], str]) -> int:
    out = sys.stdout
    with am_http(token, args.yarn.login) as http:
        def body() -> str:
            document = status_document(checked(http.get(f"{address}/api/state")).json(), app_id, address)
            return ended(as_json(document, one_line=args.watch) if args.json else render(document, address))

        if not args.watch:
            out.write(body())
            return EXIT_OK
        tty = out.isatty() and not args.json

        def frame() -> str:
            try:
                text = body()
            except Exception as exc:  # tarn-am restarting, a refused token: say so, keep watching
                _, message, unexpected = classify(exc)
                if unexpected:
                    raise
                if args.json:
                    return ended(as_json({"app_id": app_id, "am_address": address, "error": message}, True))
                text = f"tarn-am at {address}: {message}"
            return text if args.json else watch_frame(text, args.interval_s, time.time(), tty)

        return watch(frame, args.interval_s, out)
