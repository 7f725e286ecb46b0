"""Stopping the processes tests start."""
from __future__ import annotations

import subprocess


def terminate(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
