"""tarn-am: parse settings, configure logging, run (the supervisor in supervisor.py restarts it)."""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import List, Optional

from tarn_shared.cli_help import settings_parser
from tarn_shared.errors import ConfigError
from tarn_shared.logs import configure_logging

from .runtime import EXIT_CONFIG, serve
from .settings import AmSettings
from .supervisor import REASON_FILE_ENV

NOTES = """\
`tarn submit` sets these in the application master's environment; tarn-am runs under
`python -m tarn_am.supervisor`, which restarts it unless it exits 78 (configuration error)."""


def leave_reason(error: BaseException) -> None:
    """Tell the supervisor why we stop: it ends the application with this when it gives up."""
    path = os.environ.get(REASON_FILE_ENV)
    if path:
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(" ".join(str(error).split()) or type(error).__name__)
        except OSError:
            pass


def main(argv: Optional[List[str]] = None) -> int:
    parser = settings_parser("tarn-am", "TARN's application master: keeps a Triton fleet on YARN at its "
                                        "target and scales it with load.", AmSettings, NOTES)
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # --help (0), or an argument it does not take: restarting cannot fix that
        return 0 if exc.code == 0 else EXIT_CONFIG
    try:
        settings = AmSettings.load()
    except ConfigError as exc:
        print(f"tarn-am: {exc}", file=sys.stderr)
        leave_reason(exc)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_json, service="tarn-am")
    try:
        return asyncio.run(serve(settings))
    except ConfigError as exc:
        logging.getLogger("tarn_am").error("configuration error", extra={"error": str(exc)})
        leave_reason(exc)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # e.g. the API port taken: the supervisor restarts us, then gives up with this
        logging.getLogger("tarn_am").exception("tarn-am failed", extra={"error": str(exc)})
        leave_reason(exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
