"""What deploy/local/demo needs besides its steps: the run directory's state, the processes
it starts (each in its own process group, tracked by pid), waiting with a log tail on
failure, and the check that nothing is left behind. Standard library only, so `demo down`
works even where the project's virtualenv is gone."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tarnstack  # noqa: E402  (beside this file; standard library only)

stop_pid = tarnstack.stop_pid
alive = tarnstack.alive
tail = tarnstack.tail
free_port = tarnstack.free_port


class DemoError(RuntimeError):
    """A step failed; the message says which and why, `log` names where to look."""

    def __init__(self, message: str, log: Optional[Path] = None, extra: str = "") -> None:
        super().__init__(message)
        self.log = log
        self.extra = extra

    def report(self) -> str:
        parts = [f"demo: {self}"]
        if self.log is not None:
            parts.append(f"--- last lines of {self.log} ---\n{tail(self.log, 40)}")
        if self.extra:
            parts.append(self.extra)
        return "\n".join(parts)


_SAVING = threading.Lock()


class DemoState:
    """demo.json in the demo's directory: what runs, on which ports, with which secrets.
    Written after every change so `demo down` can stop whatever a failed `up` left."""

    def __init__(self, demo_dir: Path) -> None:
        self.dir = demo_dir
        self.path = demo_dir / "demo.json"
        try:
            self.data: Dict = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def save(self) -> None:
        with _SAVING:  # `up --kerberos` starts Knox from a second thread
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2))
            tmp.chmod(0o600)  # it holds the demo's token
            tmp.replace(self.path)

    @property
    def processes(self) -> Dict[str, Dict]:
        return self.data.setdefault("processes", {})

    def spawn(self, name: str, argv: List[str], env: Mapping[str, str]) -> subprocess.Popen:
        log_path = self.dir / f"{name}.log"
        with open(log_path, "wb") as log:  # one run per log
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.dir, env=dict(env), start_new_session=True)
        self.processes[name] = {"pid": proc.pid, "argv": argv, "log": str(log_path)}
        self.save()
        return proc

    def stop(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            stop_pid(proc["pid"])
        self.save()


def wait_until(check: Callable[[], object], what: str, timeout_s: float, log: Optional[Path] = None,
               proc: Optional[subprocess.Popen] = None, interval_s: float = 0.2) -> object:
    """Poll check() until it is truthy; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DemoError(f"{what}: the process exited with {proc.returncode}", log)
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not yet"
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(interval_s)
    raise DemoError(f"{what}: not done within {timeout_s:.0f} s ({last})", log)


def http_status(url: str, headers: Optional[Mapping[str, str]] = None, timeout_s: float = 2.0,
                body: Optional[bytes] = None) -> int:
    """The status of a GET, or of a POST of the JSON ``body``."""
    import urllib.error
    import urllib.request
    headers = dict(headers or {}, **({"Content-Type": "application/json"} if body is not None else {}))
    request = urllib.request.Request(url, data=body, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def haproxy_servers(socket_path: str, backend: str) -> List[Dict[str, str]]:
    """`show servers state` of one backend as dicts (srv_name, srv_addr, srv_op_state, ...)."""
    text = tarnstack.haproxy_command(socket_path, f"show servers state {backend}")
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("# ")), None)
    if header is None:
        return []
    names = header[2:].split()
    return [dict(zip(names, line.split())) for line in lines if not line.startswith("#") and len(line.split()) > 5]


def serving(server: Mapping[str, str]) -> bool:
    """Up by its health check (op state 2) and in no maintenance or drain (admin state 0)."""
    return server.get("srv_op_state") == "2" and server.get("srv_admin_state") == "0"


def parse_hadoop_env(path: Path, base: Mapping[str, str]) -> Dict[str, str]:
    """The environment a shell gets from `source hadoop.env` (PATH is prepended to)."""
    env = dict(base)
    for line in path.read_text().splitlines():
        if not line.startswith("export "):
            continue
        key, _, value = line[len("export "):].partition("=")
        if key == "PATH":
            env["PATH"] = f"{shlex.split(value.split(':', 1)[0])[0]}:{env.get('PATH', '')}"
        else:
            env[key] = shlex.split(value)[0] if value else ""
    return env


def leftover_processes(run_dir: Path) -> List[str]:
    """Processes (other than this one and its ancestors) working in, or naming, the run directory."""
    mine = {os.getpid()}
    pid = os.getppid()
    while pid > 1:
        mine.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    needle = str(run_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            stat = (entry / "stat").read_text()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue  # a zombie holds nothing and goes with its parent
        if cwd == needle or cwd.startswith(needle + "/") or needle + "/" in cmdline:
            found.append(f"{entry.name} {cmdline[:160]}")
    return found


def create_credential(env: Mapping[str, str], provider: str, alias: str, value: str) -> None:
    """One alias in a JCEKS credential file, with Hadoop's own CredentialShell (store password
    Hadoop's default). Its --value is on that tool's command line for a moment: a demo only
    (an operator's `hadoop credential create` prompts for it)."""
    tool = HERE / "hadoop" / "credential"
    result = subprocess.run([str(tool), "create", alias, "--value", value, "--provider", provider], env=dict(env),
                            capture_output=True, text=True, timeout=180)
    if result.returncode != 0 or "successfully created" not in result.stdout:
        raise DemoError(f"`credential create {alias}` failed (exit {result.returncode}): "
                        f"{(result.stdout + result.stderr).strip()[-800:]}")
