"""The images: each installs its service from this repository, sets only variables its
settings know, and runs a real entry point; the entry-point scripts work. No Docker
engine here, so nothing is built; the HAProxy entry point is run with `haproxy -c`."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, SERVICES, Dockerfile, console_scripts, env_names, resolve_entry_point

DOCKER = ROOT / "deploy" / "docker"
# image -> the TARN service it installs (None: HAProxy, no TARN service)
IMAGES = {"gateway-sync": "gateway-sync", "authz": "authz", "am": "am", "triton": "node-agent", "haproxy": None}


def test_there_is_one_dockerfile_per_image_and_nothing_else():
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKER.glob("*.Dockerfile")} == set(IMAGES)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_copied_path_exists_in_the_repository(image):
    dockerfile = Dockerfile.parse(DOCKER / f"{image}.Dockerfile")
    for args in dockerfile.all("COPY"):
        *sources, _destination = args.split()
        for source in sources:
            assert not source.startswith("--"), f"{image}: COPY flags are not expected ({args})"
            assert (ROOT / source).exists(), f"{image}.Dockerfile copies {source}, which does not exist"


@pytest.mark.parametrize("image", sorted(i for i, s in IMAGES.items() if s))
def test_image_installs_its_service_and_shared(image):
    service = SERVICES[IMAGES[image]]
    copied = {args.split()[0] for args in Dockerfile.parse(DOCKER / f"{image}.Dockerfile").all("COPY")}
    assert {"shared", service.package_dir} <= copied
    installs = " ".join(Dockerfile.parse(DOCKER / f"{image}.Dockerfile").all("RUN"))
    assert re.search(rf"pip install .*/src/{re.escape(service.package_dir)}", installs), installs


@pytest.mark.parametrize("image", sorted(i for i, s in IMAGES.items() if s))
def test_image_sets_only_variables_its_settings_know(image):
    service = SERVICES[IMAGES[image]]
    env = Dockerfile.parse(DOCKER / f"{image}.Dockerfile").env()
    accepted = env_names(service.settings_class())
    tarn_vars = [name for name in env if name.startswith(("TARN_", "RANGER_"))]
    unknown = [name for name in tarn_vars if name.upper() not in accepted]
    assert not unknown, f"{image}.Dockerfile sets {unknown}, not fields of {service.settings}"


@pytest.mark.parametrize("image", sorted(i for i, s in IMAGES.items() if s))
def test_image_command_is_a_console_entry_point(image):
    command = Dockerfile.parse(DOCKER / f"{image}.Dockerfile").exec_form("CMD")
    scripts = console_scripts(IMAGES[image])
    assert command and command[0] in scripts, f"{image}: CMD {command}; entry points {sorted(scripts)}"
    assert callable(resolve_entry_point(scripts[command[0]]))


def test_triton_image_is_nvidias_with_the_node_agent_and_what_tarn_submit_runs():
    dockerfile = Dockerfile.parse(DOCKER / "triton.Dockerfile")
    assert dockerfile.all("FROM") == ["nvcr.io/nvidia/tritonserver:${TRITON_TAG}-py3"]
    args = dict(a.split("=", 1) for a in dockerfile.all("ARG") if "=" in a)
    assert re.fullmatch(r"\d{2}\.\d{2}", args["TRITON_TAG"])
    # tarn submit's launch script inside the image (spec.triton_script with --runtime docker)
    from tarn_am.cli.options import SubmitOptions
    from tarn_am.cli.spec import PythonLauncher, triton_script

    options = SubmitOptions.parse({"model_repository": "hdfs:///models", "image": "tarn/triton:24.09"})
    script = triton_script(options, PythonLauncher())
    assert "exec tarn-node-agent" in script
    assert dockerfile.exec_form("CMD") == ["tarn-node-agent"]


def test_submit_gives_the_containers_only_variables_their_settings_know():
    """The AM and node-agent are configured by `tarn submit`'s spec, not by a compose file."""
    from tarn_am.cli.options import SubmitOptions
    from tarn_am.cli.spec import agent_environment, am_environment
    from tarn_am.containers import Slot

    options = SubmitOptions.parse({
        "model_repository": "hdfs:///models", "image": "tarn/triton:24.09", "token": "t", "admin_token": "a",
        "zk_ensemble": "zk:2181", "ranger_service": "triton", "authz_url": "http://authz:8096",
        "secrets": "hdfs:///secrets/hf.jceks", "tritonserver": "/opt/tritonserver/bin/tritonserver",
        "env": {"TRITON_LOG_VERBOSE": "1"}})
    am_vars = set(am_environment(options, [Slot("nvidia-node1", "node1")]))
    assert not am_vars - env_names(SERVICES["am"].settings_class())
    agent_vars = {k for k in agent_environment(options) if k.startswith("TARN_")}
    assert not agent_vars - env_names(SERVICES["node-agent"].settings_class())


def _executable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IXUSR)


def test_tarn_entrypoint_exports_secret_files_named_after_variables(tmp_path):
    script = DOCKER / "tarn-entrypoint.sh"
    assert _executable(script)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "TARN_AUTHZ_GATEWAY_TOKEN").write_text("s3cret\n")
    (secrets / "RANGER_SERVICE").write_text("triton")
    (secrets / "haproxy-users").write_text("user alice password x")
    env = {"PATH": os.environ["PATH"], "TARN_SECRETS_DIR": str(secrets)}
    done = subprocess.run([str(script), "sh", "-c", 'echo "$TARN_AUTHZ_GATEWAY_TOKEN|$RANGER_SERVICE|${haproxy_users:-}"'],
                          capture_output=True, text=True, env=env, timeout=10)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "s3cret|triton|"


def test_haproxy_entrypoint_renders_a_configuration_haproxy_accepts(tmp_path):
    real = shutil.which("haproxy")
    assert real, "haproxy is not installed: deploy/local/install-deps installs it"
    script = DOCKER / "haproxy-entrypoint.sh"
    assert _executable(script)
    secrets, run_dir, shims = tmp_path / "secrets", tmp_path / "run", tmp_path / "bin"
    for d in (secrets, run_dir, shims):
        d.mkdir()
    (secrets / "TARN_AUTHZ_GATEWAY_TOKEN").write_text("gw-token-123\n")
    (secrets / "haproxy-users").write_text("user alice insecure-password alice-pw\n")
    # The image runs `haproxy -db -f cfg`; here the same configuration goes through `haproxy -c`.
    (shims / "haproxy").write_text(f'#!/bin/sh\n[ "$1" = "-db" ] && shift\nexec {real} -c "$@"\n')
    (shims / "haproxy").chmod(0o755)
    env = {"PATH": f"{shims}:{os.environ['PATH']}", "HAPROXY_RUN_DIR": str(run_dir),
           "HAPROXY_SECRETS_DIR": str(secrets), "HAPROXY_TEMPLATE_DIR": str(ROOT / "deploy/haproxy"),
           "HAPROXY_HTTP_PORT": "18080", "HAPROXY_AUTHZ_URL": "http://authz:8096",
           "HAPROXY_TRUSTED_NETWORKS": "10.1.2.0/24", "HAPROXY_GRPC_PORT": "18081"}
    done = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    config = (run_dir / "haproxy.cfg").read_text()
    assert oct((run_dir / "haproxy.cfg").stat().st_mode & 0o777) == "0o600"
    assert "setenv TARN_AUTHZ_URL http://authz:8096" in config
    assert "setenv TARN_AUTHZ_GATEWAY_TOKEN gw-token-123" in config
    assert f"stats socket {run_dir}/haproxy-authz.sock" in config
    assert "bind 0.0.0.0:18080" in config
    assert "acl tarn_trusted_net src 10.1.2.0/24" in config
    assert "bind 0.0.0.0:18081 proto h2" in config and "tarn_authz_grpc.lua" in config


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_buildkit_ignore_file_sends_only_what_the_image_copies(image):
    patterns = [line.strip() for line in (DOCKER / f"{image}.Dockerfile.dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "start from nothing (the repository holds .venv and build outputs)"
    kept = [p[1:] for p in patterns if p.startswith("!")]
    for args in Dockerfile.parse(DOCKER / f"{image}.Dockerfile").all("COPY"):
        for source in args.split()[:-1]:
            assert any(source == k or source.startswith(k.rstrip("*").rstrip("/") + "/") or
                       Path(source).match(k) for k in kept), f"{image}: {source} is ignored"
