"""A real tritonserver for tests: the binary and python backend that PyPI's nvidia-pytriton bundles.

The wheel ships ``pytriton/tritonserver/bin/tritonserver`` (CPU capable), the python
backend library, and one python-backend stub per Python minor version. Its shared
libraries live beside the package in ``nvidia_pytriton.libs``. We assemble a backend
directory from those pieces once per (wheel, interpreter) in a cache directory, and run
the bundled binary in place.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from tests.support.ports import LOOPBACK, free_ports

PYTRITON_DISTRIBUTION = "nvidia-pytriton"
MODEL_CONTROL_MODES = ("none", "poll", "explicit")
_STUB_NAME = "triton_python_backend_stub"
_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
_START_ATTEMPTS = 3


class TritonNotInstalled(RuntimeError):
    """The bundled tritonserver, or a piece it needs, cannot be found."""


class TritonStartError(RuntimeError):
    """tritonserver exited or did not become ready in time; the message carries the log tail."""


@dataclass(frozen=True)
class TritonInstall:
    """Where the pieces of the nvidia-pytriton wheel are on disk."""

    version: str
    binary: Path
    python_backend: Path
    stubs: Path
    libs: Path

    def stub_for(self, python_version: str) -> Path:
        stub = self.stubs / python_version / _STUB_NAME
        if not stub.is_file():
            shipped = sorted(p.name for p in self.stubs.iterdir() if (p / _STUB_NAME).is_file())
            raise TritonNotInstalled(
                f"{PYTRITON_DISTRIBUTION} {self.version} ships no python-backend stub for "
                f"Python {python_version} (it has {', '.join(shipped) or 'none'})"
            )
        return stub


@dataclass(frozen=True)
class PythonEnv:
    """The interpreter that runs python-backend models (its numpy, its libpython)."""

    executable: Path
    version: str
    libdir: Path

    @classmethod
    def of(cls, executable: Optional[str] = None) -> "PythonEnv":
        executable = executable or sys.executable
        if Path(executable) == Path(sys.executable):
            facts = _interpreter_facts()
        else:
            query = subprocess.run([executable, "-c", _FACTS_SCRIPT], capture_output=True, text=True)
            if query.returncode != 0:
                raise TritonNotInstalled(f"cannot ask {executable} about itself: {query.stderr.strip()}")
            facts = json.loads(query.stdout)
            # Not the path we were given: that may be a launcher (a pyenv shim) in another bin.
            executable = facts["executable"]
        if not (Path(executable).parent / "python3").exists():
            # See TritonRuntime.environment: without it the stub would run another Python's stdlib.
            raise TritonNotInstalled(f"no python3 beside {executable}; the python-backend stub needs one")
        libdir = Path(facts["libdir"])
        if not facts["shared"] or not (libdir / facts["ldlibrary"]).exists():
            raise TritonNotInstalled(
                f"{executable} has no shared libpython in {libdir}; the python-backend stub "
                "links against libpython, so build that Python with --enable-shared"
            )
        return cls(Path(executable), facts["version"], libdir)


_FACTS_SCRIPT = (
    "import json, sys, sysconfig; print(json.dumps({"
    "'executable': sys.executable, 'version': '%d.%d' % sys.version_info[:2], "
    "'libdir': sysconfig.get_config_var('LIBDIR'), "
    "'ldlibrary': sysconfig.get_config_var('LDLIBRARY'), "
    "'shared': bool(sysconfig.get_config_var('Py_ENABLE_SHARED'))}))"
)


def _interpreter_facts() -> Dict[str, object]:
    return {
        "version": "%d.%d" % sys.version_info[:2],
        "libdir": sysconfig.get_config_var("LIBDIR"),
        "ldlibrary": sysconfig.get_config_var("LDLIBRARY"),
        "shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED")),
    }


def locate_install() -> TritonInstall:
    """Find the tritonserver that nvidia-pytriton installed, without importing pytriton."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotInstalled(
            f"{PYTRITON_DISTRIBUTION} is not installed in {sys.prefix} (see tests/requirements.txt)"
        )
    package = Path(list(spec.submodule_search_locations)[0])
    root = package / "tritonserver"
    install = TritonInstall(
        version=importlib.metadata.version(PYTRITON_DISTRIBUTION),
        binary=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stubs=root / "python_backend_stubs",
        # An editable (source) install keeps them inside the package instead.
        libs=next(
            (p for p in (package.parent / "nvidia_pytriton.libs", root / "external_libs") if p.is_dir()),
            package.parent / "nvidia_pytriton.libs",
        ),
    )
    missing = [
        str(p)
        for p in (install.binary, install.libs, install.stubs)
        + tuple(install.python_backend / name for name in _BACKEND_FILES)
        if not p.exists()
    ]
    if missing:
        raise TritonNotInstalled(f"incomplete {PYTRITON_DISTRIBUTION} install, missing: {', '.join(missing)}")
    return install


def default_cache_dir() -> Path:
    configured = os.environ.get("TARN_TRITON_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tarn" / "triton"


def assemble_backend_directory(install: TritonInstall, python: PythonEnv, cache_dir: Path) -> Path:
    """Return a ``--backend-directory`` holding ``python/`` with the stub for ``python``.

    tritonserver loads ``<dir>/python/libtriton_python.so``; that backend runs
    ``triton_python_backend_stub`` from its own directory, so the stub matching the
    models' interpreter has to sit beside it. Built once per wheel and interpreter,
    in a temporary directory renamed into place, so concurrent sessions never see half.
    """
    stub = install.stub_for(python.version)
    sources = [install.python_backend / name for name in _BACKEND_FILES] + [stub]
    fingerprint = hashlib.sha256(
        "\n".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sources).encode()
    ).hexdigest()[:16]
    target = cache_dir / f"pytriton-{install.version}-py{python.version}-{fingerprint}"
    if (target / "python" / _STUB_NAME).is_file():
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".assembling-", dir=cache_dir))
    try:
        backend = staging / "python"
        backend.mkdir()
        for source in sources:
            shutil.copy2(source, backend / source.name)
        (backend / _STUB_NAME).chmod(0o755)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "python" / _STUB_NAME).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass(frozen=True)
class TritonPorts:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls, host: str = LOOPBACK) -> "TritonPorts":
        return cls(*free_ports(3, host))


@dataclass(frozen=True)
class TritonRuntime:
    """Everything needed to launch the bundled tritonserver with working python models."""

    install: TritonInstall
    python: PythonEnv
    backend_directory: Path

    @property
    def binary(self) -> Path:
        return self.install.binary

    def environment(self, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """``base`` (default: this process's environment) plus what the stub needs."""
        env = dict(os.environ if base is None else base)
        # The stub links libpython<ver>.so; it must be this interpreter's, not a system one.
        # The copied backend's RPATH no longer reaches the wheel's own libs, so name them too.
        env["LD_LIBRARY_PATH"] = _join_path(
            [str(self.python.libdir), str(self.install.libs)], env.get("LD_LIBRARY_PATH")
        )
        # The embedded interpreter finds its prefix by looking up `python3` on PATH; the
        # models' interpreter first makes it use that venv's site-packages (numpy).
        env["PATH"] = _join_path([str(self.python.executable.parent)], env.get("PATH"))
        # A PYTHONHOME would override that lookup and point the stub at another stdlib.
        env.pop("PYTHONHOME", None)
        return env

    def command(
        self,
        model_repository: Path,
        ports: TritonPorts,
        *,
        model_control_mode: str = "none",
        extra_args: Sequence[str] = (),
        host: str = LOOPBACK,
    ) -> List[str]:
        if model_control_mode not in MODEL_CONTROL_MODES:
            raise ValueError(
                f"model_control_mode must be one of {MODEL_CONTROL_MODES}, got {model_control_mode!r}"
            )
        return [
            str(self.binary),
            f"--model-repository={model_repository}",
            f"--backend-directory={self.backend_directory}",
            f"--model-control-mode={model_control_mode}",
            f"--http-address={host}",
            f"--http-port={ports.http}",
            f"--grpc-address={host}",
            f"--grpc-port={ports.grpc}",
            f"--metrics-address={host}",
            f"--metrics-port={ports.metrics}",
            # Stubs talk to the server through /dev/shm; a per-server prefix keeps
            # servers running side by side (several test sessions) out of each other's regions.
            f"--backend-config=python,shm-region-prefix-name=tarn{os.getpid()}x{uuid.uuid4().hex[:8]}",
            *extra_args,
        ]


def _join_path(first: Sequence[str], rest: Optional[str]) -> str:
    return os.pathsep.join(list(first) + ([rest] if rest else []))


@lru_cache(maxsize=None)
def triton_runtime(python_executable: Optional[str] = None, cache_dir: Optional[str] = None) -> TritonRuntime:
    """Locate the wheel and assemble (once) its backend directory for ``python_executable``."""
    install = locate_install()
    python = PythonEnv.of(python_executable)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    return TritonRuntime(install, python, assemble_backend_directory(install, python, cache))


def tritonserver_command(
    model_repository: Path,
    ports: TritonPorts,
    *,
    model_control_mode: str = "none",
    extra_args: Sequence[str] = (),
    base_env: Optional[Mapping[str, str]] = None,
) -> Tuple[List[str], Dict[str, str]]:
    """The argv and environment that run the bundled tritonserver; for tests that spawn it themselves."""
    runtime = triton_runtime()
    argv = runtime.command(
        Path(model_repository), ports, model_control_mode=model_control_mode, extra_args=extra_args
    )
    return argv, runtime.environment(base_env)


class TritonServer:
    """One tritonserver process on free loopback ports.

    ``stop()`` sends SIGTERM and, ``exit_timeout_s`` + 5 s later, SIGKILL to the process
    group. ``extra_args`` go last, so they override the defaults built here.

    ``http_url`` and ``metrics_url`` are full URLs; ``grpc_url`` and ``http_host_port``
    are ``host:port`` as tritonclient's gRPC and HTTP clients expect them.
    """

    def __init__(
        self,
        model_repository: Path,
        *,
        model_control_mode: str = "none",
        extra_args: Sequence[str] = (),
        log_path: Optional[Path] = None,
        ready_timeout_s: float = 60.0,
        exit_timeout_s: int = 10,
        runtime: Optional[TritonRuntime] = None,
    ) -> None:
        self.model_repository = Path(model_repository)
        self.model_control_mode = model_control_mode
        self.extra_args = tuple(extra_args)
        self.log_path = Path(log_path) if log_path else _temp_log_path()
        self.ready_timeout_s = ready_timeout_s
        self.exit_timeout_s = exit_timeout_s
        # Triton's own shutdown polls once a second; give it that slack past its timeout.
        self.stop_timeout_s = exit_timeout_s + 5.0
        self.startup_s: Optional[float] = None
        self._runtime = runtime
        self._ports: Optional[TritonPorts] = None
        self._process: Optional[subprocess.Popen] = None
        self._stopped = False

    # -- endpoints -------------------------------------------------------------------
    @property
    def ports(self) -> TritonPorts:
        if self._ports is None:
            raise RuntimeError("tritonserver has not been started")
        return self._ports

    @property
    def http_host_port(self) -> str:
        return f"{LOOPBACK}:{self.ports.http}"

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.metrics}/metrics"

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "TritonServer":
        if self.is_running():
            raise RuntimeError(f"tritonserver already running (pid {self.pid})")
        runtime = self._runtime or triton_runtime()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._ports = TritonPorts.free()
            argv = runtime.command(
                self.model_repository,
                self._ports,
                model_control_mode=self.model_control_mode,
                # On SIGTERM Triton waits this long for in-flight requests and open
                # HTTP connections (its default, 30 s, is long for a test).
                extra_args=(f"--exit-timeout-secs={self.exit_timeout_s}", *self.extra_args),
            )
            started = time.monotonic()
            self._spawn(argv, runtime.environment())
            self._stopped = False
            try:
                self._wait_ready(argv)
            except TritonStartError:
                self.stop()
                # Free ports are only free until someone binds them; pick others and retry.
                if attempt < _START_ATTEMPTS and "already in use" in self.log_tail().lower():
                    continue
                raise
            self.startup_s = time.monotonic() - started
            return self
        raise AssertionError("unreachable")

    def stop(self) -> Optional[int]:
        """SIGTERM, then SIGKILL to the whole process group after ``stop_timeout_s``."""
        process = self._process
        if process is None or self._stopped:
            return process.returncode if process else None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid)
                process.wait()
        # Python-backend stubs that outlived their server would hold /dev/shm regions.
        _kill_group(process.pid)
        self._stopped = True
        return process.returncode

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 80) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(deque(log, maxlen=lines))
        except FileNotFoundError:
            return ""

    # -- internals -------------------------------------------------------------------
    def _spawn(self, argv: List[str], env: Dict[str, str]) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            # Its own session, so stop() can reach the stubs it forks.
            self._process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self, argv: List[str]) -> None:
        assert self._process is not None
        ready_url = f"{self.http_url}/v2/health/ready"
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                raise TritonStartError(
                    self._failure(f"tritonserver exited with status {returncode} before it was ready")
                )
            if _answers_200(ready_url):
                return
            if time.monotonic() >= deadline:
                raise TritonStartError(
                    self._failure(
                        f"tritonserver was not ready at {ready_url} within {self.ready_timeout_s:.0f} s"
                    )
                )
            time.sleep(0.1)

    def error_lines(self, limit: int = 20) -> List[str]:
        """Log lines that say what went wrong (glog errors, unavailable models), oldest first."""
        try:
            with open(self.log_path, errors="replace") as log:
                found = [
                    line.rstrip()[:1000]
                    for line in log
                    if _ERROR_LINE.search(line) and not any(noise in line for noise in _CPU_ONLY_NOISE)
                ]
        except FileNotFoundError:
            return []
        return found[-limit:]

    def _failure(self, what: str) -> str:
        errors = "\n".join(self.error_lines()) or "(none)"
        return (
            f"{what}\nmodel repository: {self.model_repository}\nlog: {self.log_path}\n"
            f"--- errors in the log ---\n{errors}\n"
            f"--- last lines of the log ---\n{self.log_tail(40)}"
        )


# glog errors ("E1122 12:57:44.206 ..."), config parse errors, unloadable models, fatal exits.
_ERROR_LINE = re.compile(r"^E\d{4} |^\[libprotobuf ERROR|UNAVAILABLE:|^error: ")
# Logged as errors on every start without a GPU; they never explain a failure.
_CPU_ONLY_NOISE = ("CudaDriverHelper has not been initialized",)


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers_200(url: str) -> bool:
    try:
        with _NO_PROXY_OPENER.open(url, timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _temp_log_path() -> Path:
    handle, path = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
    os.close(handle)
    return Path(path)
