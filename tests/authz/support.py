"""Shared set-up for the authz service tests: a policy folder holding Ranger-written
payloads, and a real tarn-authz server on it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tarn_authz.app import SERVER_OPTIONS, create_app
from tarn_authz.settings import AuthzSettings
from tests.authz.servers import ServerThread

PAYLOADS = Path(__file__).resolve().parent / "replay" / "payloads"
SERVICE = "triton_prod"
GATEWAY_TOKEN = "gateway-secret"
PLAIN_TOKEN = "plain-secret"
GATEWAY = {"X-TARN-Token": GATEWAY_TOKEN}


def write_policy_dir(folder: Path, version: str = "v1", service: str = SERVICE) -> Path:
    """<service>.json, <service>_roles.json, <service>_userstore.json as Ranger wrote them."""
    folder.mkdir(parents=True, exist_ok=True)
    source = PAYLOADS / SERVICE / version
    policies = json.loads((source / "policies.json").read_text())
    policies["serviceName"] = service  # Ranger names the service inside the download
    (folder / f"{service}.json").write_text(json.dumps(policies))
    shutil.copy(source / "roles.json", folder / f"{service}_roles.json")
    shutil.copy(source / "userstore.json", folder / f"{service}_userstore.json")
    return folder


def settings_for(tmp_path: Path, **overrides) -> AuthzSettings:
    values = dict(ranger_service=SERVICE, policy_dir=tmp_path / "policies", cache_dir=tmp_path / "cache",
                  gateway_token=GATEWAY_TOKEN, token=PLAIN_TOKEN, serve_deployments=False, refresh_interval_s=0.2,
                  log_json=False)
    values.update(overrides)
    return AuthzSettings.load(**values)


@pytest.fixture
def start_authz(tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    servers = []

    def start(**overrides) -> ServerThread:
        server = ServerThread(create_app(settings_for(tmp_path, **overrides)), **SERVER_OPTIONS).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
