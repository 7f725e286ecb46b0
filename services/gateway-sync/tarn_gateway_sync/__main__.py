"""tarn-gateway-sync: read settings, configure logging, serve. No logic here."""
from __future__ import annotations

import sys
from typing import List, Optional

import uvicorn

from tarn_shared.cli_help import settings_parser
from tarn_shared.errors import ConfigError
from tarn_shared.logs import configure_logging

from .app import create_app
from .settings import GatewaySyncSettings


def main(argv: Optional[List[str]] = None) -> int:
    settings_parser("tarn-gateway-sync", "Keeps HAProxy and ZooKeeper (which Knox discovers) equal to the live "
                                         "Triton instances of every deployment.", GatewaySyncSettings).parse_args(argv)
    try:
        settings = GatewaySyncSettings.load()
    except ConfigError as exc:
        print(f"tarn-gateway-sync: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json, service="gateway-sync")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
