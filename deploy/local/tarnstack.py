"""The local stack: real Redis, ZooKeeper and HAProxy (and optionally the YARN/HDFS
minicluster) on 127.0.0.1 with free ports, for the demo and the tests.

Standard library only, so it runs before the project's virtualenv exists. State lives in
the run directory (``stack.json``); ``down`` stops every process ``up`` started.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import socket
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kdc  # noqa: E402 (the KDC beside this script)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RUN_DIR = ROOT / "deploy" / "local" / "run"
HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy" / "haproxy.cfg.tmpl"
MINICLUSTER = ROOT / "deploy" / "local" / "hadoop" / "minicluster"
ZOOKEEPER_CLASSPATH = "/usr/share/java/zookeeper.jar"
START_TIMEOUT_S = 60.0
sys.path.insert(0, str(ROOT / "deploy" / "haproxy"))
from render_authz import gateway_key_rule  # noqa: E402  (standard library only, as this file)


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(address, request: bytes, family=socket.AF_INET, timeout_s: float = 2.0) -> bytes:
    """Send one request on a fresh connection and read the answer until the peer closes
    or a short pause; enough for PING, ruok and the HAProxy Runtime API."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(address)
        s.sendall(request)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if request.startswith(b"PING") and chunk.endswith(b"\r\n"):
                    break
        except socket.timeout:
            pass
        return b"".join(chunks)


def redis_ping(port: int) -> bool:
    return ask(("127.0.0.1", port), b"PING\r\n").startswith(b"+PONG")


def zk_ruok(port: int) -> bool:
    return ask(("127.0.0.1", port), b"ruok") == b"imok"


def haproxy_command(sock_path: str, command: str) -> str:
    return ask(sock_path, command.encode() + b"\n", family=socket.AF_UNIX).decode()


def wait_until(check: Callable[[], bool], what: str, log_path: Path, proc: Optional[subprocess.Popen],
               timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with {proc.returncode} while starting; log tail:\n{tail(log_path)}")
        try:
            if check():
                return
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise StackError(f"{what} did not answer within {timeout_s:.0f}s ({last_error}); log tail:\n{tail(log_path)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass
    # Not ours (`stack up` or `demo up` started it and exited): it is init's to reap, which can
    # take seconds; an exited process is not alive while it waits for that.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:  # reaped since kill(0): gone
        return False
    except (OSError, IndexError):
        return True


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Signal the process group (started with start_new_session), then SIGKILL it."""
    for s in (sig, signal.SIGKILL):
        try:
            os.killpg(pid, s)
        except ProcessLookupError:
            try:  # not (yet) a group leader: the process itself
                os.kill(pid, s)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)
    if alive(pid):
        raise StackError(f"process {pid} survived SIGKILL")


class Stack:
    """Start, stop and restart the stack's components in one run directory."""

    def __init__(self, run_dir: Path = DEFAULT_RUN_DIR) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.state_path = self.run_dir / "stack.json"
        self.state: Dict = self._load()

    # ------------------------------------------------------------ public

    def up(self, hadoop: bool = False, test_backends: int = 0, slots: int = 8,
           kerberos: bool = False, hadoop_conf: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """``hadoop_conf``: Hadoop settings over the minicluster's own (a test-only stack's)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.running():
            raise StackError(f"a stack already runs from {self.run_dir}; run `stack down` first")
        self.state = {"processes": {}, "ports": {}, "env": {}, "test_backends": [], "kerberos": kerberos}
        try:
            if kerberos:
                self._start_kdc()
            self.start("redis")
            self.start("zookeeper")
            self._render_haproxy(test_backends, slots)
            self.start("haproxy")
            if hadoop:
                self._hadoop_up(hadoop_conf or {})
        except BaseException:
            self.down()
            raise
        self._write_env()
        return dict(self.state["env"])

    def down(self) -> List[str]:
        stopped = []
        if self.state.get("hadoop"):
            subprocess.run([str(MINICLUSTER), "down", "--run-dir", str(self.run_dir / "hadoop"),
                            "--env-file", str(self.run_dir / "hadoop.env")], check=False)
            stopped.append("hadoop")
        for name, proc in list(self.state.get("processes", {}).items()):
            stop_pid(proc["pid"])
            stopped.append(name)
        self.state = {}
        for path in (self.state_path, self.run_dir / "stack.env"):
            path.unlink(missing_ok=True)
        # The realm's keys and tickets go with the stack.
        shutil.rmtree(self.kdc.dir, ignore_errors=True)
        return stopped

    def running(self) -> Dict[str, bool]:
        return {name: alive(p["pid"]) for name, p in self.state.get("processes", {}).items()}

    def start(self, name: str) -> None:
        """(Re)start one component on its recorded ports (new ones the first time)."""
        starter = {"redis": self._start_redis, "zookeeper": self._start_zookeeper,
                   "haproxy": self._start_haproxy, "kdc": self._start_kdc_process}[name]
        starter()
        self._save()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        stop_pid(self.state["processes"][name]["pid"], sig)
        del self.state["processes"][name]
        self._save()

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)

    @property
    def env(self) -> Dict[str, str]:
        return dict(self.state.get("env", {}))

    @property
    def kdc(self) -> "kdc.Kdc":
        return kdc.Kdc(self.run_dir / "kerberos")

    # ------------------------------------------------------------ components

    def _port(self, key: str) -> int:
        ports = self.state.setdefault("ports", {})
        if key not in ports:
            ports[key] = free_port()
        return ports[key]

    def _spawn(self, name: str, argv: List[str], env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        log_path = self.run_dir / f"{name}.log"
        log = open(log_path, "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.run_dir, env=env, start_new_session=True)
        log.close()
        self.state.setdefault("processes", {})[name] = {"pid": proc.pid, "argv": argv, "log": str(log_path)}
        return proc

    def _start_redis(self) -> None:
        port = self._port("redis")
        proc = self._spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                     "--save", "", "--appendonly", "no", "--dir", str(self.run_dir),
                                     "--daemonize", "no"])
        wait_until(lambda: redis_ping(port), "redis", self.run_dir / "redis.log", proc)
        self.state["env"]["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"

    def _start_zookeeper(self) -> None:
        port = self._port("zookeeper")
        data_dir = self.run_dir / "zookeeper"
        data_dir.mkdir(exist_ok=True)
        cfg = self.run_dir / "zoo.cfg"
        sasl = self._zookeeper_sasl() if self.state.get("kerberos") else []
        # Debian's scripts hard-code /etc paths; run the main class with our own config.
        cfg.write_text("\n".join(sasl + [
            "tickTime=500", "initLimit=10", "syncLimit=5", f"dataDir={data_dir}",
            f"clientPort={port}", "clientPortAddress=127.0.0.1", "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,wchs",
            "maxSessionTimeout=60000", "minSessionTimeout=1000", "",
        ]))
        java = os.path.join(os.environ.get("JAVA_HOME", "/usr"), "bin", "java")
        jvm_sasl = [f"-Djava.security.krb5.conf={self.kdc.krb5_conf}",
                    f"-Djava.security.auth.login.config={self.run_dir / 'zookeeper-jaas.conf'}"] if sasl else []
        proc = self._spawn("zookeeper", [java, "-Xmx256m", "-Dzookeeper.jmx.log4j.disable=true", *jvm_sasl,
                                         "-cp", ZOOKEEPER_CLASSPATH,
                                         "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)])
        wait_until(lambda: zk_ruok(port), "zookeeper", self.run_dir / "zookeeper.log", proc)
        self.state["env"]["ZK_HOSTS"] = f"127.0.0.1:{port}"

    def _zookeeper_sasl(self) -> List[str]:
        """SASL/GSSAPI: clients may authenticate as their principal (sasl ACLs name it);
        unauthenticated clients still connect, and only open znodes take their writes."""
        (self.run_dir / "zookeeper-jaas.conf").write_text(
            "Server {\n  com.sun.security.auth.module.Krb5LoginModule required\n"
            f'  useKeyTab=true storeKey=true useTicketCache=false keyTab="{self.kdc.keytab("zookeeper")}"\n'
            f'  principal="{kdc.principal("zookeeper/localhost")}";\n}};\n')
        return ["authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"]

    def _start_kdc(self) -> None:
        self.kdc.create(self._port("kdc"))
        self.start("kdc")
        self.state["env"].update(self.kdc.client_env())

    def _start_kdc_process(self) -> None:
        realm = self.kdc
        proc = self._spawn("kdc", realm.command(), env=realm.env())
        wait_until(realm.can_log_in, "the KDC", self.run_dir / "kdc.log", proc)

    def _render_haproxy(self, test_backends: int, slots: int) -> None:
        self.state["ports"].update({"haproxy_http": free_port(), "haproxy_slots_http": free_port(),
                                    "haproxy_stats": free_port()})
        extra = []
        # One Triton key for every backend of the local stack, in the map HAProxy reads at start.
        keys = self.run_dir / "gateway-keys.map"
        key = self.state.setdefault("gateway_key", secrets.token_hex(32))
        backends = ["triton_backend", "triton_slots"] + [f"test_{kind}_{i}" for i in range(test_backends)
                                                         for kind in ("dyn", "slots")]
        keys.write_text("".join(f"{name} {key}\n" for name in backends))
        keys.chmod(0o600)
        self.state["env"]["GATEWAY_KEYS_MAP"] = str(keys)
        for i in range(test_backends):
            for kind in ("dyn", "slots"):
                name, port = f"test_{kind}_{i}", free_port()
                lines = [f"frontend fe_{name}", f"    bind 127.0.0.1:{port}",
                         "    http-request del-header tarn-gateway-key", f"    default_backend {name}",
                         "", f"backend {name}", "    balance roundrobin", "    option httpchk GET /v2/health/ready",
                         "    default-server inter 1s fall 2 rise 1", gateway_key_rule(keys)]
                lines += [f"    server triton-{n} 0.0.0.0:8000 check disabled" for n in range(1, slots + 1)] \
                    if kind == "slots" else []
                extra.append("\n".join(lines) + "\n")
                self.state["test_backends"].append({"name": name, "port": port, "kind": kind})
        text = string.Template(HAPROXY_TEMPLATE.read_text()).substitute(
            RUN_DIR=str(self.run_dir), HTTP_PORT=self.state["ports"]["haproxy_http"],
            SLOTS_HTTP_PORT=self.state["ports"]["haproxy_slots_http"],
            STATS_PORT=self.state["ports"]["haproxy_stats"],
            SLOT_SERVERS="\n".join(f"    server triton-{n} 0.0.0.0:8000 check disabled" for n in range(1, slots + 1)),
            GATEWAY_KEY_RULE=gateway_key_rule(keys),
            EXTRA="\n".join(extra),
        )
        (self.run_dir / "haproxy.cfg").write_text(text)

    def _start_haproxy(self) -> None:
        cfg = self.run_dir / "haproxy.cfg"
        check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise StackError(f"haproxy rejected {cfg}:\n{check.stdout}{check.stderr}")
        sock = str(self.run_dir / "haproxy.sock")
        proc = self._spawn("haproxy", ["haproxy", "-db", "-f", str(cfg)])
        wait_until(lambda: "Name: HAProxy" in haproxy_command(sock, "show info"), "haproxy",
                   self.run_dir / "haproxy.log", proc)
        ports = self.state["ports"]
        self.state["env"].update({
            "HAPROXY_SOCKET": sock,
            "HAPROXY_HTTP_PORT": str(ports["haproxy_http"]), "HAPROXY_SLOTS_HTTP_PORT": str(ports["haproxy_slots_http"]),
            "HAPROXY_STATS_URL": f"http://127.0.0.1:{ports['haproxy_stats']}/stats", "HAPROXY_CFG": str(cfg),
        })

    def _hadoop_up(self, hadoop_conf: Dict[str, str]) -> None:
        if not MINICLUSTER.exists():
            raise StackError(f"{MINICLUSTER} is missing: the minicluster is not part of this checkout")
        hadoop_run = self.run_dir / "hadoop"
        self.state["hadoop"] = True
        self._save()
        secure = ["--kerberos-dir", str(self.kdc.dir)] if self.state.get("kerberos") else []
        overrides = [arg for key, value in hadoop_conf.items() for arg in ("--conf", f"{key}={value}")]
        result = subprocess.run([str(MINICLUSTER), "up", "--run-dir", str(hadoop_run),
                                 "--env-file", str(self.run_dir / "hadoop.env"), *secure, *overrides])
        if result.returncode != 0:
            raise StackError(f"the minicluster did not start (exit {result.returncode}); see {hadoop_run}")
        self.state["env"].update(read_env_file(self.run_dir / "hadoop.env"))

    # ------------------------------------------------------------ state

    def _load(self) -> Dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(self.state, indent=2))

    def _write_env(self) -> None:
        self._save()
        lines = [export_line(k, v) for k, v in sorted(self.state["env"].items())]
        (self.run_dir / "stack.env").write_text("\n".join(lines) + "\n")


def export_line(key: str, value: str) -> str:
    # hadoop.env prepends to PATH: keep "$PATH" for the shell to expand, not a literal.
    if key == "PATH" and value.endswith(":$PATH"):
        return f'export PATH={shlex.quote(value[:-len(":$PATH")])}:"$PATH"'
    return f"export {key}={shlex.quote(value)}"


def read_env_file(path: Path) -> Dict[str, str]:
    """Parse ``export K=V`` lines as a shell would (V may be quoted)."""
    env = {}
    if not path.exists():
        return env
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            key, sep, value = word.partition("=")
            if sep:
                env[key] = value
    return env


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--hadoop", action="store_true", help="also start the YARN/HDFS minicluster")
    parser.add_argument("--kerberos", action="store_true",
                        help="a KDC of the stack's own; ZooKeeper with SASL, the minicluster in secure mode")
    parser.add_argument("--slots", type=int, default=8, help="placeholder slots in triton_slots")
    parser.add_argument("--hadoop-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hadoop setting over the minicluster's own (test stacks); repeatable")
    args = parser.parse_args(argv)
    stack = Stack(args.run_dir)
    try:
        if args.command == "up":
            started = time.monotonic()
            overrides = dict(item.partition("=")[::2] for item in args.hadoop_conf)
            env = stack.up(hadoop=args.hadoop, slots=args.slots, kerberos=args.kerberos, hadoop_conf=overrides)
            print(f"stack up in {time.monotonic() - started:.1f}s; source {stack.run_dir / 'stack.env'}")
            for key, value in sorted(env.items()):
                print(f"  {key}={value}")
        elif args.command == "down":
            stopped = stack.down()
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        else:
            status = stack.running()
            if not status:
                print("not running")
                return 1
            for name, ok in status.items():
                print(f"{name}: {'running' if ok else 'DEAD'}")
            return 0 if all(status.values()) else 1
    except (StackError, kdc.KdcError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
