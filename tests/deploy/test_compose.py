"""docker-compose.yml: valid for `docker-compose config`, every variable it gives a TARN
service is a field of that service's settings (and the values load), every command it runs
is a real console entry point. No Docker engine here: nothing is built or started."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest
import yaml

from tests.deploy.support import ROOT, SERVICES, console_scripts, env_names, resolve_entry_point

COMPOSE_FILE = ROOT / "docker-compose.yml"
# compose service -> TARN service whose settings and entry points it uses
TARN_SERVICES = {"gateway-sync": "gateway-sync", "authz": "authz"}
OUTSIDE_YARN = {"redis", "zookeeper", "haproxy", "gateway-sync", "authz"}
# The images' entry point (deploy/docker/tarn-entrypoint.sh) exports secrets whose file
# name has one of these prefixes as environment variables.
SECRET_ENV_PREFIXES = ("TARN_", "RANGER_")
SECRETS_DIR = "/run/secrets"


@pytest.fixture(scope="module")
def resolved() -> Dict:
    """`docker-compose config` output: interpolated and normalized, as Compose will run it."""
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is not installed: deploy/local/install-deps installs Debian's docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARN_", "RANGER_", "COMPOSE_"))}
    done = subprocess.run([compose, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, f"docker-compose config rejected the file:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


def test_compose_file_has_exactly_the_services_that_run_outside_yarn(resolved):
    assert set(resolved["services"]) == OUTSIDE_YARN


def _environment(service: Dict) -> Dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _secret_variables(service: Dict) -> Dict[str, str]:
    """Secrets mounted under the name of a variable the entry point exports."""
    found = {}
    for secret in service.get("secrets") or []:
        target = secret if isinstance(secret, str) else secret.get("target") or secret["source"]
        if Path(target).name.startswith(SECRET_ENV_PREFIXES):
            found[Path(target).name] = "a-secret-value"
    return found


@pytest.mark.parametrize("compose_service", sorted(TARN_SERVICES))
def test_every_variable_given_to_a_tarn_service_is_a_settings_field(resolved, compose_service):
    service = SERVICES[TARN_SERVICES[compose_service]]
    accepted = env_names(service.settings_class())
    given = {**_environment(resolved["services"][compose_service]),
             **_secret_variables(resolved["services"][compose_service])}
    unknown = sorted(name for name in given if name.upper() not in accepted)
    assert not unknown, f"{compose_service}: not fields of {service.settings}: {unknown}"


@pytest.mark.parametrize("compose_service", sorted(TARN_SERVICES))
def test_the_compose_environment_loads_into_the_settings(resolved, compose_service, monkeypatch):
    service = SERVICES[TARN_SERVICES[compose_service]]
    for name in list(os.environ):
        if name.startswith(("TARN_", "RANGER_")):
            monkeypatch.delenv(name)
    for name, value in {**_environment(resolved["services"][compose_service]),
                        **_secret_variables(resolved["services"][compose_service])}.items():
        monkeypatch.setenv(name, value)
    settings = service.settings_class().load()  # raises ConfigError naming every bad field
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.host == "0.0.0.0"


def test_the_required_authz_gateway_token_comes_as_a_secret(resolved):
    authz = resolved["services"]["authz"]
    assert "TARN_AUTHZ_GATEWAY_TOKEN" in _secret_variables(authz)
    assert "TARN_AUTHZ_GATEWAY_TOKEN" not in _environment(authz), "a secret must not sit in the compose file"
    haproxy_targets = {s["target"] for s in resolved["services"]["haproxy"]["secrets"]}
    assert {"TARN_AUTHZ_GATEWAY_TOKEN", "haproxy-users"} <= haproxy_targets


@pytest.mark.parametrize("compose_service", sorted(TARN_SERVICES))
def test_every_command_is_a_console_entry_point_of_the_service(resolved, compose_service):
    service = resolved["services"][compose_service]
    command = service["command"]
    if isinstance(command, str):
        command = command.split()
    scripts = console_scripts(TARN_SERVICES[compose_service])
    assert command[0] in scripts, f"{compose_service} runs {command[0]!r}; entry points: {sorted(scripts)}"
    assert callable(resolve_entry_point(scripts[command[0]]))


def test_gateway_sync_drives_the_runtime_api_socket_haproxy_writes(resolved):
    services = resolved["services"]
    socket_path = _environment(services["gateway-sync"])["TARN_GATEWAY_SYNC_HAPROXY_SOCKETS"]
    run_dir = _environment(services["haproxy"])["HAPROXY_RUN_DIR"]
    # The authz template puts the admin socket at ${RUN_DIR}/haproxy-authz.sock.
    template = (ROOT / "deploy/haproxy/haproxy-authz.cfg.tmpl").read_text()
    assert "stats socket ${RUN_DIR}/haproxy-authz.sock" in template
    assert socket_path == f"{run_dir}/haproxy-authz.sock"

    def volume_of(service, target):
        for volume in services[service]["volumes"]:
            spec = volume if isinstance(volume, str) else f"{volume['source']}:{volume['target']}"
            source, _, rest = spec.partition(":")
            if rest.split(":")[0] == target:
                return source
        return None

    assert volume_of("haproxy", run_dir) is not None
    assert volume_of("haproxy", run_dir) == volume_of("gateway-sync", run_dir)


def test_services_reach_each_other_by_compose_name(resolved):
    services = resolved["services"]
    authz_port = _environment(services["authz"])["TARN_AUTHZ_PORT"]
    assert _environment(services["haproxy"])["HAPROXY_AUTHZ_URL"] == f"http://authz:{authz_port}"
    assert _environment(services["gateway-sync"])["TARN_GATEWAY_SYNC_ZK_HOSTS"] == "zookeeper:2181"
    assert set(services["gateway-sync"]["depends_on"]) >= {"redis", "zookeeper", "haproxy"}


def test_builds_name_dockerfiles_that_exist(resolved):
    for name, service in resolved["services"].items():
        build = service.get("build")
        if build:
            dockerfile = Path(build["context"]) / build["dockerfile"]
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
            assert dockerfile.parent == ROOT / "deploy" / "docker"
