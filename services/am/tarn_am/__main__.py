"""tarn-am: parse settings, configure logging, run (the supervisor in supervisor.py restarts it)."""
from __future__ import annotations

import asyncio
import logging
import sys

from tarn_shared.errors import ConfigError
from tarn_shared.logs import configure_logging

from .runtime import EXIT_CONFIG, serve
from .settings import AmSettings


def main() -> int:
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
