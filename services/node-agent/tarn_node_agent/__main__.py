"""tarn-node-agent: parse settings, configure logging, run. No logic here."""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import Optional, Sequence

from tarn_shared.errors import ConfigError
from tarn_shared.logs import configure_logging

from .agent import EXIT_CONFIG, NodeAgent
from .settings import load_settings


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        print(f"tarn-node-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_json, service="node-agent")
    for chatty in ("httpx", "hdfs.client"):  # one line per request otherwise
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    return asyncio.run(NodeAgent(settings).run())


if __name__ == "__main__":
    sys.exit(main())
