"""tarn-am: parse settings, configure logging, run (the supervisor in supervisor.py restarts it)."""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import List, Optional

from tarn_shared.cli_help import settings_parser
from tarn_shared.errors import ConfigError
from tarn_shared.logs import configure_logging

from .runtime import EXIT_CONFIG, serve
from .settings import AmSettings

NOTES = """\
`tarn submit` sets these in the application master's environment; tarn-am runs under
`python -m tarn_am.supervisor`, which restarts it unless it exits 78 (configuration error)."""


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
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_json, service="tarn-am")
    try:
        return asyncio.run(serve(settings))
    except ConfigError as exc:
        logging.getLogger("tarn_am").error("configuration error", extra={"error": str(exc)})
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
