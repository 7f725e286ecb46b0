"""tarn-gateway-sync: read settings, configure logging, serve. No logic here."""
from __future__ import annotations

import logging
import sys
from typing import List, Optional

import uvicorn

from tarn_shared.cli_help import settings_parser
from tarn_shared.errors import ConfigError
from tarn_shared.logs import configure_logging

from . import sasl_login
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
    problem = sasl_login.check(settings.zk_hosts, settings.zk_sasl_mechanism, settings.zk_acl)
    if problem is not None and problem.fatal:
        print(f"tarn-gateway-sync: {problem.message}", file=sys.stderr)
        return 2
    if problem is not None:
        logging.getLogger(__name__).warning(problem.message)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
