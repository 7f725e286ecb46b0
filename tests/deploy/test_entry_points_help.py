"""Every entry point answers --help with no configuration at all (an empty environment), listing
each setting's environment variable; unconfigured, it says what is missing in one line.
The real console scripts of the virtualenv, run as subprocesses."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from tests.deploy.support import SERVICES, env_names

BIN = Path(sys.executable).parent
# service -> its console script (the AM's package also holds `tarn`, tested in tests/am)
SCRIPTS = {"am": "tarn-am", "node-agent": "tarn-node-agent", "gateway-sync": "tarn-gateway-sync",
           "authz": "tarn-authz"}
CONFIG_EXIT = {"am": 78, "node-agent": 2, "gateway-sync": 2, "authz": 2}


def empty_env(tmp_path: Path) -> Dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if os.environ.get("PYTHONPATH"):  # a checkout run against another checkout's venv
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def run(command: List[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=empty_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("service", sorted(SCRIPTS))
def test_help_needs_no_configuration_and_lists_every_variable(service, tmp_path):
    done = run([str(BIN / SCRIPTS[service]), "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"usage: {SCRIPTS[service]}") and done.stdout.endswith("\n")
    missing = sorted(name for name in env_names(SERVICES[service].settings_class()) if name not in done.stdout)
    assert missing == []


@pytest.mark.parametrize("service", sorted(SCRIPTS))
def test_unconfigured_it_names_the_missing_variable_in_one_line(service, tmp_path):
    done = run([str(BIN / SCRIPTS[service])], tmp_path)
    assert done.returncode == CONFIG_EXIT[service]
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{SCRIPTS[service]}: invalid settings: "), done.stderr
    assert done.stderr.endswith("\n")


def test_the_supervisor_answers_help_instead_of_running_it(tmp_path):
    done = run([sys.executable, "-m", "tarn_am.supervisor", "--help"], tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m tarn_am.supervisor")
    assert "tarn-am started" not in done.stderr


def test_an_unknown_argument_to_tarn_am_is_a_configuration_error_the_supervisor_does_not_retry(tmp_path):
    done = run([str(BIN / "tarn-am"), "--no-such-flag"], tmp_path)
    assert done.returncode == 78 and "unrecognized arguments: --no-such-flag" in done.stderr
