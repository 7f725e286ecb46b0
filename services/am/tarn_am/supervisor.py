"""The AM container's master script: keep tarn-am running inside this container.

skein keeps no containers across application attempts, so tarn-am must never take the AM
container down with it: this supervisor restarts it (a crash costs no Triton container;
the new tarn-am takes the running ones over). Restarts back off exponentially; a crash
loop (many exits in a window) is logged and slows restarts to the maximum delay, and a
configuration error (exit 78) ends the application with its message, since restarting
cannot fix it. SIGTERM/SIGINT are passed on to tarn-am and end the supervisor.
"""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

EXIT_CONFIG = 78
log = logging.getLogger("tarn_am.supervisor")


@dataclass(frozen=True)
class SupervisorPolicy:
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    healthy_after_s: float = 60.0  # a run this long resets the backoff
    crash_loop_exits: int = 5
    crash_loop_window_s: float = 120.0


@dataclass(frozen=True)
class SupervisorState:
    exits: Tuple[float, ...] = ()  # when recent runs ended (monotonic seconds)
    consecutive_failures: int = 0


@dataclass(frozen=True)
class Verdict:
    restart: bool
    delay_s: float
    crash_loop: bool
    reason: str


def on_exit(returncode: int, ran_s: float, now: float, state: SupervisorState,
            policy: SupervisorPolicy = SupervisorPolicy()) -> Tuple[Verdict, SupervisorState]:
    """Pure: what to do after tarn-am exited with ``returncode`` after ``ran_s`` seconds."""
    if returncode == EXIT_CONFIG:
        return Verdict(False, 0.0, False, "configuration error: restarting cannot fix it"), state
    exits = tuple(t for t in state.exits if now - t < policy.crash_loop_window_s) + (now,)
    failures = 1 if ran_s >= policy.healthy_after_s else state.consecutive_failures + 1
    crash_loop = len(exits) >= policy.crash_loop_exits
    delay = min(policy.backoff_max_s, policy.backoff_initial_s * 2 ** (failures - 1))
    if crash_loop:
        delay = policy.backoff_max_s
    reason = f"tarn-am exited with {returncode} after {ran_s:.1f} s"
    if crash_loop:
        reason += f"; crash loop ({len(exits)} exits in {policy.crash_loop_window_s:.0f} s)"
    return Verdict(True, delay, crash_loop, reason), SupervisorState(exits, failures)


def _log(event: str, **fields) -> None:
    # The supervisor logs JSON lines without importing the shared library (tiny and robust).
    print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "service": "tarn-am-supervisor",
                      "message": event, **fields}), file=sys.stderr, flush=True)


def run(command: Sequence[str], policy: SupervisorPolicy = SupervisorPolicy()) -> int:
    state = SupervisorState()
    stopping = False
    child: Optional[subprocess.Popen] = None

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    starts = 0
    while True:
        started = time.monotonic()
        starts += 1
        child = subprocess.Popen(list(command))
        _log("tarn-am started", pid=child.pid, start=starts)
        returncode = child.wait()
        if stopping:
            _log("tarn-am stopped", returncode=returncode)
            return 0
        now = time.monotonic()
        verdict, state = on_exit(returncode, now - started, now, state, policy)
        _log("tarn-am exited", returncode=returncode, restart=verdict.restart, delay_s=verdict.delay_s,
             crash_loop=verdict.crash_loop, reason=verdict.reason)
        if not verdict.restart:
            return returncode
        deadline = time.monotonic() + verdict.delay_s
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, verdict.delay_s))
        if stopping:
            return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["-h"], ["--help"]):
        print(f"usage: python -m tarn_am.supervisor [COMMAND...]  (default: {sys.executable} -m tarn_am)\n\n"
              f"{__doc__.strip()}\n\ntarn-am's settings: tarn-am --help")
        return 0
    command = argv or [sys.executable, "-m", "tarn_am"]
    return run(command)


if __name__ == "__main__":
    sys.exit(main())
