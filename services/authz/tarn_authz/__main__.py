"""tarn-authz: read flags and settings, configure logging, serve. No logic here.

The seeds' flags --ranger-service/-rs, --ranger-app-id/-ra and --ranger-audit/-raudit
override TARN_AUTHZ_RANGER_* and RANGER_SERVICE / RANGER_APP_ID / RANGER_AUDIT."""
from __future__ import annotations

import sys
from typing import List, Optional

import uvicorn

from tarn_shared.cli_help import settings_parser
from tarn_shared.errors import ConfigError
from tarn_shared.logs import configure_logging

from .app import SERVER_OPTIONS, create_app
from .settings import AuthzSettings


def parse_flags(argv: Optional[List[str]] = None) -> dict:
    parser = settings_parser("tarn-authz", "Ranger policy decision point for Triton models.", AuthzSettings,
                             "A flag beats the environment; a TARN_AUTHZ_ variable beats the seeds' one.")
    parser.add_argument("--ranger-service", "-rs", dest="ranger_service", help="Ranger service instance")
    parser.add_argument("--ranger-app-id", "-ra", dest="ranger_app_id", help="Ranger application id (default tarn)")
    parser.add_argument("--ranger-audit", "-raudit", dest="ranger_audit", action="store_true", default=None,
                        help="audit decisions")
    parser.add_argument("--ranger-url", dest="ranger_url", help="Ranger Admin URL")
    parser.add_argument("--policy-dir", dest="policy_dir", help="local ServicePolicies folder")
    parser.add_argument("--host", dest="host")
    parser.add_argument("--port", dest="port", type=int)
    args = parser.parse_args(argv)
    return {k: v for k, v in vars(args).items() if v is not None}


def main(argv: Optional[List[str]] = None) -> int:
    overrides = parse_flags(argv)
    try:
        settings = AuthzSettings.load(**overrides)
    except ConfigError as exc:
        print(f"tarn-authz: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json, service="authz")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, **SERVER_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
