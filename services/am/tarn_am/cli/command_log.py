"""Where a `tarn` command's own chatter goes: skein's Java driver, Hadoop's client log lines
(NativeCodeLoader, ResourceUtils, ...), `yarn classpath`'s stderr and Python's warnings and
log records are written to one file per command, never to the user's terminal. `--verbose`
names the file; an unexpected error leaves its traceback there."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Iterator, List, Mapping, Optional, Sequence

KEEP_LOGS = 20  # the newest command logs kept in the directory


def log_dir(environ: Mapping[str, str], home: Optional[str]) -> Path:
    """$XDG_CACHE_HOME/tarn, else ~/.cache/tarn, else a per-user folder in the temp dir."""
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]) / "tarn"
    if home:
        return Path(home) / ".cache" / "tarn"
    return Path(tempfile.gettempdir()) / f"tarn-{os.getuid()}"


def log_name(command: str, now: float, pid: int) -> str:
    # Sortable by time; the pid keeps two commands started in the same second apart.
    return f"tarn-{command}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{pid}.log"


def stale_logs(names: Sequence[str], keep: int = KEEP_LOGS) -> List[str]:
    """The command logs to delete so that ``keep`` remain: the oldest by name (names start with the time)."""
    logs = [n for n in names if n.startswith("tarn-") and n.endswith(".log")]
    by_time = sorted(logs, key=lambda n: n.split("-", 2)[-1])
    return by_time[:max(0, len(by_time) - keep)]


class CommandLog:
    """One command's log file, created on first use."""

    def __init__(self, path: Path, verbose: bool = False) -> None:
        self.path = path
        self.verbose = verbose
        self._handler: Optional[logging.Handler] = None
        self._root_level = logging.WARNING

    @classmethod
    def for_command(cls, command: str, verbose: bool = False,
                    environ: Optional[Mapping[str, str]] = None) -> "CommandLog":
        environ = os.environ if environ is None else environ
        directory = log_dir(environ, environ.get("HOME") or os.path.expanduser("~"))
        return cls(directory / log_name(command, time.time(), os.getpid()), verbose)

    def open(self) -> Path:
        if self._handler is not None:
            return self.path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            for name in stale_logs([p.name for p in self.path.parent.iterdir()], KEEP_LOGS - 1):
                (self.path.parent / name).unlink(missing_ok=True)
            self.path.touch(mode=0o600)
        except OSError:  # an unwritable home: fall back to the temp dir
            self.path = Path(tempfile.gettempdir()) / f"tarn-{os.getuid()}-{self.path.name}"
        self._handler = logging.FileHandler(self.path, mode="a", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(self._handler)
        self._root_level = root.level
        root.setLevel(logging.DEBUG if self.verbose else logging.INFO)
        logging.captureWarnings(True)  # skein reports some problems as warnings
        if self.verbose:
            print(f"tarn: skein's driver and Hadoop's client log to {self.path}", file=sys.stderr, flush=True)
        return self.path

    def close(self) -> None:
        if self._handler is not None:
            logging.captureWarnings(False)
            logging.getLogger().removeHandler(self._handler)
            logging.getLogger().setLevel(self._root_level)
            self._handler.close()
            self._handler = None

    def record_exception(self, exc: BaseException) -> Path:
        path = self.open()
        logging.getLogger("tarn").error("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path

    @contextlib.contextmanager
    def capturing_output(self) -> Iterator[Path]:
        """Send this process's stdout and stderr file descriptors (so also a child's, such as
        skein's driver and `yarn classpath`) to the log while the block runs.

        skein's own ``log=PATH`` opens PATH for writing (truncating it) after `yarn classpath`
        ran; an inherited append-mode descriptor keeps every line, in order, in one file."""
        path = self.open()
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.dup2(target, 1)
            os.dup2(target, 2)
            yield path
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, target):
                os.close(fd)
