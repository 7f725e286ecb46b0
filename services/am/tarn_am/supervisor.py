"""The AM container's master script: keep tarn-am running inside this container.

skein keeps no containers across application attempts, so tarn-am must never take the AM
container down with it: this supervisor restarts it (a crash costs no Triton container;
the new tarn-am takes the running ones over). Restarts back off exponentially. Two ends stop
it instead, since restarting cannot help: a configuration error (exit 78), and a crash loop
(``--crash-loop-failures`` exits within ``--crash-loop-window``, e.g. a port another process
holds). Either ends the application attempt FAILED with the reason as YARN's diagnostics,
where `tarn status` shows it (skein lets YARN retry a failed attempt while one is left: on
another node a taken port may be free); tarn-am leaves its last error in the file named by
TARN_AM_EXIT_REASON_FILE. SIGTERM/SIGINT are passed on to tarn-am and end the supervisor.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .policy_config import CRASH_LOOP_FAILURES, CRASH_LOOP_WINDOW_S

EXIT_CONFIG = 78
REASON_FILE_ENV = "TARN_AM_EXIT_REASON_FILE"
log = logging.getLogger("tarn_am.supervisor")


@dataclass(frozen=True)
class SupervisorPolicy:
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    healthy_after_s: float = 60.0  # a run this long resets the backoff
    crash_loop_exits: int = CRASH_LOOP_FAILURES  # tarn submit --crash-loop-failures
    crash_loop_window_s: float = CRASH_LOOP_WINDOW_S  # tarn submit --crash-loop-window

    @classmethod
    def from_environment(cls, environ) -> "SupervisorPolicy":
        """The crash-loop thresholds tarn submit gave tarn-am; tarn-am itself reports bad ones (exit 78)."""
        try:
            exits = int(environ.get("TARN_AM_CRASH_LOOP_FAILURES", cls.crash_loop_exits))
            window_s = float(environ.get("TARN_AM_CRASH_LOOP_WINDOW_S", cls.crash_loop_window_s))
        except ValueError:
            return cls()
        return cls(crash_loop_exits=max(1, exits),
                   crash_loop_window_s=window_s if window_s > 0 else cls.crash_loop_window_s)


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
            policy: SupervisorPolicy = SupervisorPolicy(), error: str = "") -> Tuple[Verdict, SupervisorState]:
    """Pure: what to do after tarn-am exited with ``returncode`` after ``ran_s`` seconds,
    saying ``error`` (its last words, or empty)."""
    said = f": {error}" if error else ""
    if returncode == EXIT_CONFIG:
        return Verdict(False, 0.0, False, f"tarn-am configuration error{said} (restarting cannot fix it)"), state
    exits = tuple(t for t in state.exits if now - t < policy.crash_loop_window_s) + (now,)
    failures = 1 if ran_s >= policy.healthy_after_s else state.consecutive_failures + 1
    delay = min(policy.backoff_max_s, policy.backoff_initial_s * 2 ** (failures - 1))
    if len(exits) >= policy.crash_loop_exits:
        return Verdict(False, 0.0, True, f"tarn-am crash loop: {len(exits)} exits in "
                                         f"{policy.crash_loop_window_s:g} s, the last with {returncode}{said}"), \
            SupervisorState(exits, failures)
    reason = f"tarn-am exited with {returncode} after {ran_s:.1f} s{said}"
    return Verdict(True, delay, False, reason), SupervisorState(exits, failures)


def last_error(path: str) -> str:
    """What tarn-am left in its reason file, on one line (empty when it left nothing)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return " ".join(handle.read(2000).split())
    except OSError:
        return ""


def end_application(reason: str) -> None:
    """End this YARN application FAILED with ``reason`` as its diagnostics (`tarn status` shows them).
    Outside a skein AM container there is no application: the reason is only logged."""
    if "SKEIN_APPLICATION_ID" not in os.environ:
        return
    try:
        import skein
        skein.ApplicationClient.from_current().shutdown("FAILED", reason)
    except Exception as exc:  # skein's AM gone too: YARN still ends the application with our exit
        _log("could not end the application with the reason", error=repr(exc))


def _log(event: str, **fields) -> None:
    # The supervisor logs JSON lines without importing the shared library (tiny and robust).
    print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "service": "tarn-am-supervisor",
                      "message": event, **fields}), file=sys.stderr, flush=True)


def run(command: Sequence[str], policy: SupervisorPolicy = SupervisorPolicy(),
        reason_file: str = ".tarn-am-exit-reason") -> int:
    state = SupervisorState()
    env = dict(os.environ, **{REASON_FILE_ENV: os.path.abspath(reason_file)})
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
        if os.path.exists(reason_file):
            os.remove(reason_file)
        child = subprocess.Popen(list(command), env=env)
        _log("tarn-am started", pid=child.pid, start=starts)
        returncode = child.wait()
        if stopping:
            _log("tarn-am stopped", returncode=returncode)
            return 0
        now = time.monotonic()
        verdict, state = on_exit(returncode, now - started, now, state, policy, last_error(reason_file))
        _log("tarn-am exited", returncode=returncode, restart=verdict.restart, delay_s=verdict.delay_s,
             crash_loop=verdict.crash_loop, reason=verdict.reason)
        if not verdict.restart:
            end_application(verdict.reason)
            return returncode or 1
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
    return run(command, SupervisorPolicy.from_environment(os.environ))


if __name__ == "__main__":
    sys.exit(main())
