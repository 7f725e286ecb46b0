"""The systemd units of gateway-sync and authz: `systemd-analyze verify` where it can run,
ExecStart against the entry points, Environment= (and the variables their comments
document) against the settings fields."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, SERVICES, TARN_VARIABLE, console_scripts, env_names, unit_directives

UNITS = {"tarn-gateway-sync.service": "gateway-sync", "tarn-authz.service": "authz"}
SYSTEMD_DIR = ROOT / "deploy" / "systemd"
# Environment= variables that are not TARN settings, and why they are there.
NOT_SETTINGS = {"KRB5CCNAME"}  # the Kerberos credential cache (authz's SPNEGO to Ranger Admin)
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def test_every_unit_is_checked():
    assert {p.name for p in SYSTEMD_DIR.glob("*.service")} == set(UNITS)


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_exec_start_runs_the_services_entry_point(unit):
    exec_start = [v for s, k, v in unit_directives(SYSTEMD_DIR / unit) if s == "Service" and k == "ExecStart"]
    assert len(exec_start) == 1
    program = exec_start[0].lstrip("-@:+!").split()[0]
    assert program.startswith("/"), "systemd needs an absolute path"
    assert Path(program).name in console_scripts(UNITS[unit]), program


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_environment_names_settings_fields(unit):
    accepted = env_names(SERVICES[UNITS[unit]].settings_class())
    path = SYSTEMD_DIR / unit
    for section, key, value in unit_directives(path):
        if key == "Environment":
            for assignment in value.split():
                name = assignment.strip('"').split("=", 1)[0]
                assert name.upper() in accepted or name in NOT_SETTINGS, f"{unit}: Environment={name}"
    # The variables the unit's comments tell operators to put in its EnvironmentFile.
    documented = {m.group(1) for line in path.read_text().splitlines() if line.startswith("#")
                  for m in TARN_VARIABLE.finditer(line)}
    assert documented, f"{unit} documents no settings"
    assert not {n for n in documented if n not in accepted}, f"{unit} documents unknown variables"


def _verify_root(tmp_path: Path) -> Path:
    """A root with the system's units (targets) and the units' programs, so `verify` checks
    the files the way they will be installed, not this machine's /opt."""
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy2(SYSTEMD_DIR / unit, root / "etc/systemd/system" / unit)
        for section, key, value in unit_directives(SYSTEMD_DIR / unit):
            if key.startswith("Exec"):
                program = root / value.lstrip("-@:+!").split()[0].lstrip("/")
                program.parent.mkdir(parents=True, exist_ok=True)
                program.write_text("#!/bin/sh\n")
                program.chmod(0o755)
    return root


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    if not SYSTEM_UNITS.is_dir():
        pytest.skip(f"{SYSTEM_UNITS} is missing: verify needs the system's targets")
    root = _verify_root(tmp_path)
    done = subprocess.run([analyze, "verify", f"--root={root}", *sorted(UNITS)], capture_output=True, text=True,
                          timeout=60)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0 and "Failed to initialize manager" in output:
        pytest.skip(f"systemd-analyze cannot run in this container: {output[:300]}")
    # Unknown keys and unparsable values are only warnings for verify: none is allowed.
    assert done.returncode == 0 and not output, output
