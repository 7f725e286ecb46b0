#!/usr/bin/env python3
"""Register the `triton` service definition in Ranger Admin and create (or update) a service
instance of it, with the PyPI `apache-ranger` client (0.0.12).

    register_triton.py --ranger-url http://ranger:6080 --user admin --service triton \
        [--servicedef deploy/ranger/triton-servicedef.json] [--kerberos]

The password comes from RANGER_ADMIN_PASSWORD (never from the command line). Re-running is
safe: an existing definition or service is updated in place."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from apache_ranger.client.ranger_client import RangerClient
from apache_ranger.exceptions import RangerServiceException
from apache_ranger.model.ranger_service import RangerService
from apache_ranger.model.ranger_service_def import RangerServiceDef

SERVICEDEF_PATH = Path(__file__).resolve().with_name("triton-servicedef.json")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranger-url", required=True)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--kerberos", action="store_true", help="SPNEGO instead of basic authentication")
    parser.add_argument("--service", default="triton", help="name of the service instance")
    parser.add_argument("--servicedef", type=Path, default=SERVICEDEF_PATH)
    parser.add_argument("--description", default="TARN Triton fleet")
    return parser.parse_args(argv)


def auth_for(args: argparse.Namespace):
    if args.kerberos:
        from requests_kerberos import OPTIONAL, HTTPKerberosAuth  # only needed on Kerberized clusters
        return HTTPKerberosAuth(mutual_authentication=OPTIONAL)
    password = os.environ.get("RANGER_ADMIN_PASSWORD")
    if not password:
        raise SystemExit("RANGER_ADMIN_PASSWORD is not set")
    return (args.user, password)


def register_service_def(ranger: RangerClient, definition: dict) -> RangerServiceDef:
    existing = ranger.get_service_def(definition["name"])  # None when Ranger answers 404
    if existing is None:
        return ranger.create_service_def(RangerServiceDef(definition))
    updated = RangerServiceDef({**definition, "id": existing.id})
    return ranger.update_service_def(definition["name"], updated)


def register_service(ranger: RangerClient, service_type: str, name: str, description: str) -> RangerService:
    wanted = {"type": service_type, "name": name, "description": description,
              "isEnabled": True, "configs": {"username": "tarn-authz"}}
    existing = ranger.get_service(name)
    if existing is None:
        return ranger.create_service(RangerService(wanted))
    return ranger.update_service(name, RangerService({**wanted, "id": existing.id}))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    definition = json.loads(args.servicedef.read_text())
    ranger = RangerClient(args.ranger_url, auth_for(args))
    try:
        service_def = register_service_def(ranger, definition)
        service = register_service(ranger, definition["name"], args.service, args.description)
    except RangerServiceException as error:
        print(f"Ranger Admin refused the request: {error.statusCode} {error.msgDesc}", file=sys.stderr)
        return 1
    print(f"service definition {service_def.name} (id {service_def.id}); service {service.name} (id {service.id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
