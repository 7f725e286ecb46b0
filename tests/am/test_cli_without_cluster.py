"""The real `tarn` console script with no cluster: a dry run prints the spec without starting
skein's driver, commands that need YARN fail in one line (never a traceback, including
skein.Client.__del__'s), and every output ends with a newline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

TARN = str(Path(sys.executable).parent / "tarn")


def environment(tmp_path: Path, path: str = "/usr/bin:/bin") -> Dict[str, str]:
    env = {"PATH": path, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    if os.environ.get("PYTHONPATH"):  # a checkout run against another checkout's venv
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def tarn(tmp_path: Path, *args: str, path: Optional[str] = None) -> subprocess.CompletedProcess:
    env = environment(tmp_path, path or "/usr/bin:/bin")
    return subprocess.run([TARN, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def assert_one_line_error(done: subprocess.CompletedProcess, prefix: str) -> None:
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.stderr.endswith("\n") and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(prefix), done.stderr


SUBMIT = ["submit", "--name", "dry", "--runtime", "process", "--model-repository", "hdfs:///models",
          "--max-instances", "2", "--token", "secret-token", "--dry-run"]


def test_a_dry_run_prints_the_spec_without_yarn_on_path(tmp_path):
    done = tarn(tmp_path, *SUBMIT)
    assert done.returncode == 0, done.stderr
    spec = json.loads(done.stdout)
    assert done.stdout.endswith("}\n")
    assert spec["master"]["env"]["TARN_AM_TOKEN"] == "***" and "secret-token" not in done.stdout
    assert sorted(spec["services"]) == ["nvidia-dry-run-node-1", "nvidia-dry-run-node-2"]
    # It says what it could not know, in one line.
    assert_one_line_error(done, "tarn submit: a dry run without --nodes reads no cluster")
    assert not (tmp_path / "cache" / "tarn").exists()  # no driver started, nothing logged


def test_a_dry_run_with_nodes_uses_them_and_says_nothing(tmp_path):
    done = tarn(tmp_path, *SUBMIT, "--nodes", "gpu1.example,gpu2.example")
    assert done.returncode == 0 and done.stderr == ""
    assert sorted(json.loads(done.stdout)["services"]) == ["nvidia-gpu1-example", "nvidia-gpu2-example"]


def test_status_without_yarn_fails_in_one_line(tmp_path):
    done = tarn(tmp_path, "status", "--name", "absent")
    assert done.returncode == 1 and done.stdout == ""
    assert_one_line_error(done, "tarn status: `yarn` is not on PATH")


def test_a_broken_hadoop_client_leaves_no_traceback_from_skeins_finalizer(tmp_path):
    # A `yarn` that fails (a half-installed Hadoop client): skein.Client's constructor raises
    # before it has a driver, and its __del__ used to print a traceback at exit.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "yarn").symlink_to("/bin/false")
    done = tarn(tmp_path, "status", "--name", "absent", "--verbose", path=f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    log = next(tmp_path.glob("cache/tarn/tarn-status-*.log"))
    assert lines == [f"tarn: skein's driver and Hadoop's client log to {log}",
                     f"tarn status: cannot start skein's driver (is HADOOP_CONF_DIR set?): "
                     f"Command '['yarn', 'classpath', '--glob']' returned non-zero exit status 1; "
                     f"its output is in {log}"]


def test_a_usage_error_exits_2_and_help_exits_0_with_the_exit_codes(tmp_path):
    bad = tarn(tmp_path, "status", "--watch", "--interval", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines()[-1] == "tarn status: error: argument --interval: '0' is not a positive number of seconds"
    usage = tarn(tmp_path, "scale", "--name", "x", "not-a-number")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    helped = tarn(tmp_path, "--help")
    assert helped.returncode == 0 and helped.stdout.endswith("\n")
    assert "exit codes: 0 ok, 1 operational error" in helped.stdout and "TARN_TOKEN" in helped.stdout
