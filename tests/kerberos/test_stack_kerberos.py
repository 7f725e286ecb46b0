"""`stack up --kerberos` and `down`: the KDC is one of the stack's processes, and down takes
it, its database and every keytab and ticket cache with it."""
from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import kdc, tarnstack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_down_stops_the_kdc_and_removes_the_realm(tmp_path):
    stack = tarnstack.Stack(tmp_path / "run")
    env = stack.up(kerberos=True)
    pids = {name: p["pid"] for name, p in stack.state["processes"].items()}
    try:
        assert set(pids) == {"kdc", "redis", "zookeeper", "haproxy"}
        assert "KRB5_CONFIG" in (tmp_path / "run" / "stack.env").read_text()
        kinit = subprocess.run(["kinit", "-k", "-t", env["TARN_KEYTAB_BOB"], kdc.principal("bob")],
                               env=dict(os.environ, **env), capture_output=True, text=True, timeout=30)
        assert kinit.returncode == 0, kinit.stderr
        assert (tmp_path / "run" / "kerberos" / "ccache").exists()  # the stack's own cache, not /tmp's
    finally:
        stack.down()
    assert not any(tarnstack.alive(pid) for pid in pids.values())
    assert not (tmp_path / "run" / "kerberos").exists()
    assert not (tmp_path / "run" / "stack.env").exists()


def test_a_missing_kerberos_tool_is_one_line_naming_the_install_script(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no kinit, kadmin.local, krb5kdc here
    monkeypatch.setattr(kdc, "_sbin", lambda binary: str(tmp_path / binary))
    with pytest.raises(kdc.KdcError, match="deploy/local/install-deps installs"):
        kdc.Kdc(tmp_path / "kerberos").create(port=1)
