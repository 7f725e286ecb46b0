"""deploy/local/demo up|down|status [--run-dir DIR] — the README's `make demo`.

`up`, in order, all real and on loopback: the local stack with the YARN/HDFS minicluster
(`stack up --hadoop`); tarn-authz on the local policies in deploy/demo/policies; HAProxy
rendered from deploy/haproxy/haproxy-authz.cfg.tmpl (basic-auth users alice and bob, the
authz Lua action in front of `triton_backend`); tarn-gateway-sync writing into that
HAProxy and ZooKeeper; the demo model repository uploaded to HDFS; `tarn submit`; then it
waits until an instance serves through HAProxy, runs one inference as alice (allowed) and
one as bob (denied, 403) with tritonclient, shows that the instance itself refuses the same
request without the deployment's Triton key (which only HAProxy adds), and prints where the
dashboard is.

`up --kerberos` (`make demo KERBEROS=1`) runs the same on the Kerberized stack (`stack up --hadoop
--kerberos`), submits as alice with her keytab and adds Knox with SPNEGO (demo_kerberos.py,
demo_knox.py). `--stack-running` uses a stack already up in the run directory (the tests' one)
and leaves it up on `down`.

`down` stops the application (`tarn stop`), the processes `up` started, and the stack,
then checks that no process is left in the run directory.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))  # tests.support and tests.knox.support (before any stray `tests` package)
from demo_support import (DemoError, DemoState, create_credential, free_port, haproxy_servers,  # noqa: E402
                          http_status, leftover_processes, parse_hadoop_env, serving, tail, wait_until)
from demo_prometheus import start_prometheus  # noqa: E402
import demo_kerberos  # noqa: E402
import demo_knox  # noqa: E402

DEFAULT_RUN_DIR = ROOT / "deploy" / "local" / "run"
MODELS = ROOT / "deploy" / "demo" / "models"
POLICIES = ROOT / "deploy" / "demo" / "policies"
VENV_BIN = ROOT / ".venv" / "bin"
STACK = ROOT / "deploy" / "local" / "stack"
DEPLOYMENT = "demo"
RANGER_SERVICE = "triton_demo"
BACKEND = "triton_backend"
GRPC_BACKEND = "triton_grpc_backend"
ZK_PATH = "/services/triton/instances"
USERS = {"alice": "alice-demo", "bob": "bob-demo"}  # HAProxy's basic-auth userlist (demo only)
SERVE_TIMEOUT_S = 420.0
HADOOP_LOG = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d ")  # skein driver chatter


class AlreadyRunning(DemoError):
    """`up` found a demo in the run directory and started nothing."""


class Demo:
    def __init__(self, run_dir: Path, instances: int = 1, kerberos: bool = False, stack_running: bool = False,
                 submit_args: Sequence[str] = ()) -> None:
        self.run_dir = run_dir.resolve()
        self.submit_args = list(submit_args)
        self.dir = self.run_dir / "demo"
        self.state = DemoState(self.dir)
        self.instances = instances
        self.kerberos = kerberos or bool(self.state.data.get("kerberos"))
        self.stack_running = stack_running or bool(self.state.data.get("stack_running"))
        # Kerberos: alice's home (skein stages there as well); otherwise the unsecured superuser's.
        base = "/user/alice/tarn-demo" if self.kerberos else "/tarn-demo"
        self.hdfs_models, self.hdfs_secrets = f"{base}/models", f"{base}/triton.jceks"
        self.step_no = 0
        self.steps = 12 if self.kerberos else 10

    # ------------------------------------------------------------------ output

    def step(self, text: str) -> float:
        self.step_no += 1
        print(f"==> [{self.step_no}/{self.steps}] {text}", flush=True)
        return time.monotonic()

    @staticmethod
    def done(started: float, text: str = "") -> None:
        print(f"    ok ({time.monotonic() - started:.1f} s){': ' + text if text else ''}", flush=True)

    # ------------------------------------------------------------------ up

    def up(self) -> None:
        began = time.monotonic()
        if any(_alive(p["pid"]) for p in self.state.processes.values()) or self.state.data.get("app_id"):
            raise AlreadyRunning(f"a demo already runs from {self.run_dir}; stop it first with "
                            f"`deploy/local/demo down --run-dir {self.run_dir}` (or `make demo-down`)")
        self.dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        # One secret for the demo: the AM's API token is also authz's gateway token, because
        # the AM asks authz on behalf of the dashboard's user (/models) and only gateway
        # callers may name a user. Production keeps them apart per service.
        self.state.data = {"run_dir": str(self.run_dir), "token": token, "deployment": DEPLOYMENT,
                           "ranger_service": RANGER_SERVICE, "users": USERS, "processes": {},
                           "kerberos": self.kerberos, "stack_running": self.stack_running}
        self.state.save()
        env = self._stack_up()
        authz_url = self._authz(env, token)
        # The deployment's Triton key: in its credential file on HDFS and HAProxy's key map only.
        gateway_key = secrets.token_hex(32)
        haproxy = self._haproxy(authz_url, token, gateway_key)
        self._gateway_sync(env, haproxy["socket"])
        self._upload(env, gateway_key)
        # Knox's gateway home takes a few JVM runs (knoxcli) and its start half a minute: beside the submit.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            knox = pool.submit(self._knox_start, env, authz_url, token, gateway_key) if self.kerberos else None
            self._submit(env, authz_url, token)
            self._wait_serving(env, haproxy)
            self._infer(haproxy["url"])
            if knox is not None:
                try:
                    started = knox.result()
                except RuntimeError as exc:  # deploy/knox/build, knoxcli or the gateway's start
                    raise DemoError(f"Knox did not start: {exc}", self.dir / "knox.log") from None
                self._infer_knox(env, started)
        self._direct(haproxy)
        self._infer_grpc(haproxy["grpc"])
        self._prometheus(token)
        self.state.data["up_s"] = round(time.monotonic() - began, 1)
        self.state.save()
        self._summary(time.monotonic() - began)

    def _stack_up(self) -> Dict[str, str]:
        flags = ["--hadoop"] + (["--kerberos"] if self.kerberos else [])
        t = self.step(f"local stack: Redis, ZooKeeper, HAProxy and the YARN/HDFS minicluster (stack up {' '.join(flags)})"
                      + (", a Kerberos KDC, SASL ZooKeeper and a secure minicluster" if self.kerberos else ""))
        if self.stack_running:
            if not (self.run_dir / "hadoop.env").exists():
                raise DemoError(f"--stack-running: no stack with the minicluster is up in {self.run_dir}")
        else:
            log = self.dir / "stack-up.log"
            with open(log, "wb") as out:
                result = subprocess.run([str(STACK), "up", *flags, "--run-dir", str(self.run_dir)],
                                        stdout=out, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                raise DemoError(f"`stack up {' '.join(flags)}` failed (exit {result.returncode})", log)
            self.state.data["stack"] = True
        env = parse_hadoop_env(self.run_dir / "hadoop.env", os.environ)
        stack_env = {k: v for k, v in _read_exports(self.run_dir / "stack.env").items() if k != "PATH"}
        env.update(stack_env)
        env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
        if self.kerberos:
            if "KRB5_CONFIG" not in stack_env:
                raise DemoError(f"--kerberos: the stack in {self.run_dir} is not Kerberized (stack up --hadoop --kerberos)")
            os.environ["KRB5_CONFIG"] = env["KRB5_CONFIG"]  # the realm, for this process's own SPNEGO and SASL clients
        self.state.data["env"] = {k: env[k] for k in ("REDIS_URL", "ZK_HOSTS", "HADOOP_CONF_DIR", "WEBHDFS_URL",
                                                        "HDFS_DEFAULT_FS", "YARN_RM_WEBAPP_URL") if k in env}
        self.state.save()
        self.done(t, f"Redis {env['REDIS_URL']}, ZooKeeper {env['ZK_HOSTS']}, "
                     f"HDFS {env.get('HDFS_DEFAULT_FS')}, YARN {env.get('YARN_RM_WEBAPP_URL')}")
        return env

    def _authz(self, env: Dict[str, str], token: str) -> str:
        t = self.step(f"tarn-authz on the local policies in {POLICIES.relative_to(ROOT)} "
                      f"(alice: infer, metadata, list on every model; bob: denied)")
        port = free_port()
        service_env = dict(env, TARN_AUTHZ_GATEWAY_TOKEN=token, TARN_AUTHZ_REDIS_URL=env["REDIS_URL"],
                           TARN_AUTHZ_CACHE_DIR=str(self.dir / "authz-cache"), TARN_AUTHZ_REFRESH_INTERVAL_S="2",
                           TARN_AUTHZ_LOG_JSON="false", TARN_AUTHZ_AUDIT_LOG=str(self.dir / "authz-audit.jsonl"))
        proc = self.state.spawn("authz", [str(VENV_BIN / "tarn-authz"), "--ranger-service", RANGER_SERVICE,
                                          "--ranger-audit", "--policy-dir", str(POLICIES),
                                          "--host", "127.0.0.1", "--port", str(port)], service_env)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(f"{url}/healthz") == 200, "tarn-authz loading the demo policies", 60,
                   self.dir / "authz.log", proc)
        self.state.data["authz_url"] = url
        self.state.save()
        self.done(t, url)
        return url

    def _haproxy(self, authz_url: str, token: str, gateway_key: str) -> Dict[str, str]:
        t = self.step("HAProxy with the authz Lua action in front of triton_backend (deploy/haproxy/haproxy-authz.cfg.tmpl)")
        import render_authz  # deploy/haproxy, put on sys.path below
        http_port, grpc_port = free_port(), free_port()
        keys = self.dir / "gateway-keys.map"
        keys.write_text(f"{BACKEND} {gateway_key}\n{GRPC_BACKEND} {gateway_key}\n")
        keys.chmod(0o600)
        cfg = self.dir / "haproxy-authz.cfg"
        cfg.write_text(render_authz.render(
            run_dir=self.dir, http_port=http_port, index_port=free_port(), grpc_port=grpc_port,
            authz_url=authz_url, gateway_token=token,
            users=[f"user {u} insecure-password {p}" for u, p in USERS.items()], bind="127.0.0.1",
            gateway_keys=keys))
        cfg.chmod(0o600)  # it holds the gateway token
        check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise DemoError(f"haproxy rejected {cfg}:\n{check.stdout}{check.stderr}")
        proc = self.state.spawn("haproxy-authz", ["haproxy", "-db", "-f", str(cfg)], os.environ)
        sock = str(self.dir / "haproxy-authz.sock")
        from tarnstack import haproxy_command
        wait_until(lambda: "Name: HAProxy" in haproxy_command(sock, "show info"), "HAProxy (authz) starting", 30,
                   self.dir / "haproxy-authz.log", proc)
        haproxy = {"url": f"http://127.0.0.1:{http_port}", "grpc": f"127.0.0.1:{grpc_port}", "socket": sock,
                   "cfg": str(cfg)}
        self.state.data["haproxy"] = haproxy
        self.state.save()
        self.done(t, f"{haproxy['url']} (users: {', '.join(USERS)})")
        return haproxy

    def _gateway_sync(self, env: Dict[str, str], socket_path: str) -> None:
        t = self.step("tarn-gateway-sync keeping that HAProxy and ZooKeeper equal to the live instances")
        port = free_port()
        service_env = dict(env, TARN_GATEWAY_SYNC_ZK_HOSTS=env["ZK_HOSTS"], TARN_GATEWAY_SYNC_HAPROXY_SOCKETS=socket_path,
                           TARN_GATEWAY_SYNC_REDIS_URL=env["REDIS_URL"], TARN_GATEWAY_SYNC_DEPLOYMENTS=DEPLOYMENT,
                           TARN_GATEWAY_SYNC_REPLICA_ID="demo-1", TARN_GATEWAY_SYNC_PORT=str(port),
                           TARN_GATEWAY_SYNC_LOG_JSON="false", TARN_GATEWAY_SYNC_DRAIN_TIMEOUT_S="30",
                           TARN_GATEWAY_SYNC_GRPC_BACKENDS=f"{BACKEND}={GRPC_BACKEND}")
        if self.kerberos:
            service_env.update(demo_kerberos.gateway_sync_env(env))
        proc = self.state.spawn("gateway-sync", [str(VENV_BIN / "tarn-gateway-sync")], service_env)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(f"{url}/healthz") == 200, "tarn-gateway-sync starting", 60,
                   self.dir / "gateway-sync.log", proc)
        self.state.data["gateway_sync_url"] = url
        self.state.save()
        self.done(t, url)

    def _upload(self, env: Dict[str, str], gateway_key: str) -> None:
        who = " as alice (her Kerberos ticket)" if self.kerberos else ""
        t = self.step(f"upload the demo model repository ({MODELS.relative_to(ROOT)}) to HDFS {self.hdfs_models}{who}")
        if not MODELS.is_dir():
            raise DemoError(f"{MODELS} is missing")
        import hdfs
        files = [p for p in sorted(MODELS.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
        login = contextlib.nullcontext()
        try:
            if self.kerberos:
                demo_kerberos.prepare_home(env["WEBHDFS_URL"], env, self.dir, "/user/alice")
                login = demo_kerberos.as_principal(env, "alice", self.dir / "ccache-alice-webhdfs")
            with login:
                client = demo_kerberos.webhdfs_client(env["WEBHDFS_URL"]) if self.kerberos else \
                    hdfs.InsecureClient(env["WEBHDFS_URL"], user="root")
                client.delete(self.hdfs_models, recursive=True)
                for path in files:
                    client.upload(f"{self.hdfs_models}/{path.relative_to(MODELS)}", str(path), overwrite=True)
                client.delete(self.hdfs_secrets)
        except hdfs.HdfsError as exc:
            raise DemoError(f"uploading to WebHDFS {env['WEBHDFS_URL']} failed: {exc}") from None
        create_credential(self._client_env(env), self._secrets_uri(env), "tarn.gateway.key", gateway_key)
        models = sorted(p.name for p in MODELS.iterdir() if (p / "config.pbtxt").exists())
        self.done(t, f"{len(files)} files, models {', '.join(models)}; the Triton key in {self.hdfs_secrets}")

    def _secrets_uri(self, env: Dict[str, str]) -> str:
        return f"jceks://hdfs@{env['HDFS_DEFAULT_FS'].split('://', 1)[1].rstrip('/')}{self.hdfs_secrets}"

    def _client_env(self, env: Dict[str, str]) -> Dict[str, str]:
        """What `tarn` and Hadoop's tools run with: on Kerberos, alice's ticket cache (kinit'ed)."""
        return demo_kerberos.alice_env(env, self.dir) if self.kerberos else dict(env)

    def _login_args(self, env: Dict[str, str]) -> List[str]:
        return demo_kerberos.login_args(env) if self.kerberos else []

    def _submit(self, env: Dict[str, str], authz_url: str, token: str) -> None:
        t = self.step(f"tarn submit --name {DEPLOYMENT}{' --principal alice@TARN.TEST --keytab alice.keytab' if self.kerberos else ''}"
                      " (tarn-am in the AM container, the node-agent and tritonserver in the Triton containers)")
        from tests.support.triton import triton_runtime  # the nvidia-pytriton tritonserver (CPU)
        runtime = triton_runtime()
        runtime_env = runtime.environment(base={"PATH": "/usr/local/bin:/usr/bin:/bin"})
        http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
        args = [
            "submit", "--name", DEPLOYMENT, "--runtime", "process",
            "--model-repository", f"{env['HDFS_DEFAULT_FS']}{self.hdfs_models}",
            "--redis-url", env["REDIS_URL"], "--zk-ensemble", env["ZK_HOSTS"], "--zk-path", ZK_PATH,
            "--haproxy-backend", BACKEND, "--authz-url", authz_url, "--ranger-service", RANGER_SERVICE,
            "--am-port", "0", "--address", "0.0.0.0",
            "--port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
            "--min-instances", "1", "--max-instances", "2", "--instances", str(self.instances),
            "--no-autoscale", "--drain-timeout", "20",
            "--container-memory", "1024", "--container-vcores", "1", "--am-memory", "512",
            "--tritonserver", str(runtime.binary), "--wait", "240",
            "--secrets", self._secrets_uri(env), *self._login_args(env), *self.submit_args,
        ]
        agent_env = {
            "TARN_NODE_AGENT_TRITON_ARGS": f"--backend-directory={runtime.backend_directory}",
            "LD_LIBRARY_PATH": runtime_env["LD_LIBRARY_PATH"], "PATH": runtime_env["PATH"],
            "TARN_NODE_AGENT_EXIT_TIMEOUT_S": "5", "TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S": "2",
            "TARN_NODE_AGENT_DRAIN_UNROUTED_TIMEOUT_S": "5", "TARN_NODE_AGENT_REQUIRE_GATEWAY_KEY": "true",
        }
        for key, value in agent_env.items():
            args += ["--agent-env", f"{key}={value}"]
        log = self.dir / "tarn-submit.log"
        # The demo's one token is authz's gateway token too: the AM presents it there.
        submit_env = dict(self._client_env(env), TARN_TOKEN=token, TARN_AUTHZ_GATEWAY_TOKEN=token)
        with open(log, "wb") as out:
            result = subprocess.run([str(VENV_BIN / "tarn"), *args], env=submit_env,
                                    stdout=out, stderr=subprocess.STDOUT, timeout=420)
        lines = log.read_text(errors="replace").splitlines()
        submitted = [line for line in lines if line.startswith("submitted ")]
        if submitted:
            self.state.data["app_id"] = submitted[0].split()[1]
            self.state.save()
        if result.returncode != 0 or not submitted:
            raise DemoError(f"`tarn submit` failed (exit {result.returncode})", log)
        address = next(line for line in lines if line.startswith("tarn-am at ")).split()[2]
        self.state.data["am_address"] = address
        self.state.save()
        self.done(t, f"{self.state.data['app_id']}, tarn-am at {address}")

    def _wait_serving(self, env: Dict[str, str], haproxy: Dict[str, str]) -> None:
        t = self.step("wait until an instance is ready, in HAProxy's triton_backend and in ZooKeeper "
                      "(staging from HDFS, Triton start, gateway-sync)")
        from kazoo.client import KazooClient
        if self.kerberos:  # the znodes' ACL lets Knox's principal read them, and nobody unauthenticated
            with demo_kerberos.as_principal(env, "knox", self.dir / "ccache-knox-zk"):
                self._wait_znodes(env, haproxy, demo_kerberos.zookeeper_reader(env), t)
        else:
            self._wait_znodes(env, haproxy, KazooClient(hosts=env["ZK_HOSTS"]), t)

    def _wait_znodes(self, env: Dict[str, str], haproxy: Dict[str, str], zk, t: float) -> None:
        zk.start(timeout=30)
        alice = _basic("alice")

        def ready() -> Optional[List[str]]:
            up = [s["srv_addr"] + ":" + s.get("srv_port", "") for s in haproxy_servers(haproxy["socket"], BACKEND)
                  if serving(s)]
            znodes = zk.get_children(ZK_PATH) if zk.exists(ZK_PATH) else []
            if up and znodes and http_status(f"{haproxy['url']}/v2/health/ready", alice) == 200:
                return znodes
            return None

        try:
            znodes = wait_until(ready, "an instance serving through HAProxy", SERVE_TIMEOUT_S, interval_s=0.5)
        except DemoError as exc:
            raise DemoError(str(exc), self.dir / "gateway-sync.log", extra=self._fleet_report(env)) from None
        finally:
            zk.stop()
            zk.close()
        self.done(t, f"serving: {', '.join(znodes)} (znodes under {ZK_PATH})")

    def _infer(self, haproxy_url: str) -> None:
        t = self.step("inference through HAProxy with tritonclient: alice (allowed), then bob (denied)")
        import numpy as np
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException

        client = httpclient.InferenceServerClient(url=haproxy_url.split("://", 1)[1])
        data = np.array([1.0, 2.0, 3.0], dtype=np.float32)
        inputs = [httpclient.InferInput("INPUT0", list(data.shape), "FP32")]
        inputs[0].set_data_from_numpy(data)
        try:
            result = client.infer("identity", inputs, headers=_basic("alice"))
            output = result.as_numpy("OUTPUT0")
            if output is None or output.tolist() != data.tolist():
                raise DemoError(f"alice's inference answered {output!r}, expected {data.tolist()}")
            print(f"    alice: identity({data.tolist()}) = {output.tolist()}  (allowed)", flush=True)
            try:
                client.infer("identity", inputs, headers=_basic("bob"))
            except InferenceServerException as exc:
                if exc.status() != "403":
                    raise DemoError(f"bob's inference failed with {exc.status()}, expected 403: {exc}") from None
                print("    bob:   identity(...) -> HTTP 403 Forbidden  (denied by tarn-authz)", flush=True)
            else:
                raise DemoError("bob's inference was allowed; the policies deny it")
        except InferenceServerException as exc:
            raise DemoError(f"alice's inference failed: {exc}", self.dir / "haproxy-authz.log") from None
        finally:
            client.close()
        self.done(t)

    def _knox_start(self, env: Dict[str, str], authz_url: str, token: str, gateway_key: str) -> Dict[str, str]:
        """Knox's gateway home and process (run beside the submit; it prints nothing)."""
        topology = demo_knox.kerberos_topology(demo_kerberos.REALM, Path(env["TARN_KEYTAB_HTTP"]), authz_url,
                                               env["ZK_HOSTS"], demo_kerberos.ZK_NAMESPACE, RANGER_SERVICE)
        gateway = demo_knox.prepare_gateway(self.dir / "knox", topology, token, gateway_key)
        argv = demo_knox.gateway_command(gateway, env["KRB5_CONFIG"], demo_kerberos.knox_jaas(env, self.dir))
        self.state.spawn("knox", argv, env)
        knox = {"url": demo_knox.triton_url(gateway), "log": str(gateway.log_path)}
        self.state.data["knox"] = knox
        self.state.save()
        return knox

    def _infer_knox(self, env: Dict[str, str], knox: Dict[str, str]) -> None:
        t = self.step("Knox with SPNEGO (HadoopAuth, deploy/knox/topologies/tarn-kerberos.xml), reading the "
                      "instances from ZooKeeper with its keytab")
        url, log = knox["url"], Path(knox["log"])
        try:
            users = demo_knox.logins(env, self.dir, demo_kerberos.REALM)
        except RuntimeError as exc:
            raise DemoError(str(exc)) from None
        wait_until(lambda: http_status(f"{url}/v2/health/ready", users["alice"].header(), timeout_s=10) == 200,
                   "alice's readiness probe through Knox", 300, log, interval_s=1)
        self.done(t, f"{url} (Kerberos: alice@{demo_kerberos.REALM}, bob@{demo_kerberos.REALM})")
        t = self.step("inference through Knox with tritonclient and a Kerberos ticket: alice (allowed), bob (denied), "
                      "no ticket (401)")
        try:
            for line in demo_knox.infer_as_each_user(url, users):
                print(f"    {line}", flush=True)
        except RuntimeError as exc:
            raise DemoError(str(exc), log) from None
        self.done(t)

    def _direct(self, haproxy: Dict[str, str]) -> None:
        t = self.step("the same inference straight to the instance's port, around HAProxy: refused "
                      "(Triton answers only requests carrying the deployment's key)")
        server = next(s for s in haproxy_servers(haproxy["socket"], BACKEND) if serving(s))
        url = f"http://{server['srv_addr']}:{server['srv_port']}"
        body = b'{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1.0]}]}'
        infer = http_status(f"{url}/v2/models/identity/infer", body=body, timeout_s=10)
        index = http_status(f"{url}/v2/repository/index", body=b"{}", timeout_s=10)
        ready = http_status(f"{url}/v2/health/ready")
        if infer != 403 or index != 403 or ready != 200:
            raise DemoError(f"straight to {url}: infer {infer}, repository index {index}, health {ready}; "
                            "expected 403, 403 and 200")
        print(f"    straight to the instance {url}: infer -> HTTP 403, repository index -> HTTP 403, "
              "health -> 200", flush=True)
        self.done(t)

    def _infer_grpc(self, address: str) -> None:
        """The same through HAProxy's gRPC frontend (gateway-sync keeps triton_grpc_backend)."""
        import numpy as np
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = grpcclient.InferenceServerClient(url=address)
        tensor = grpcclient.InferInput("INPUT0", [3], "FP32")
        tensor.set_data_from_numpy(np.array([1.0, 2.0, 3.0], dtype=np.float32))
        try:
            output = wait_until(lambda: _grpc_answer(client, tensor), "alice's gRPC inference through HAProxy", 30,
                                self.dir / "haproxy-authz.log")
            print(f"    alice (gRPC {address}): identity = {output}  (allowed)", flush=True)
            try:
                client.infer("identity", [tensor], headers=_grpc_basic("bob"))
            except InferenceServerException as exc:
                if exc.status() != "StatusCode.PERMISSION_DENIED":
                    raise DemoError(f"bob's gRPC inference failed with {exc.status()}, expected PERMISSION_DENIED")
                print("    bob   (gRPC): identity(...) -> PERMISSION_DENIED  (denied by tarn-authz)", flush=True)
            else:
                raise DemoError("bob's gRPC inference was allowed; the policies deny it")
        finally:
            client.close()

    def _prometheus(self, token: str) -> None:
        t = self.step("Prometheus scraping tarn-am, the node-agent and Triton, found through tarn-am's "
                      "service discovery (deploy/prometheus)")
        started = start_prometheus(self.state, self.state.data["am_address"], token)
        self.state.data["prometheus_url"] = started["url"]
        self.state.save()
        self.done(t, f"{started['url']}, targets up by job: {started['jobs']}")

    def _summary(self, total_s: float) -> None:
        d = self.state.data
        address, token = d["am_address"], d["token"]
        url = d["haproxy"]["url"]
        print(f"""
TARN demo is up ({total_s:.0f} s), run directory {self.run_dir}
  dashboard   {address}/dashboard#token={token}&user=alice
  AM API      {address}   (X-TARN-Token: {token})
  YARN        {d['env'].get('YARN_RM_WEBAPP_URL')}/cluster/app/{d['app_id']}
  prometheus  {d['prometheus_url']}   (scrapes tarn-am, node-agents, Triton; try deployment:tarn_container_load:avg)
  inference   {url}   users alice:{USERS['alice']} (allowed), bob:{USERS['bob']} (denied)
  gRPC        {d['haproxy']['grpc']}   the same users (basic credentials in the authorization metadata)
  try         curl -u alice:{USERS['alice']} {url}/v2/models/identity
              .venv/bin/python examples/onnx_resnet50.py --url {url.split('://', 1)[1]} --user alice --password {USERS['alice']}
              source {self.run_dir}/stack.env; TARN_TOKEN={token} .venv/bin/tarn status --name {DEPLOYMENT}
  policies    {POLICIES}/{RANGER_SERVICE}.json (re-read when it changes)""", flush=True)
        if self.kerberos:
            print(f"""  knox        {d['knox']['url']}   SPNEGO: a Kerberos ticket (alice allowed, bob denied)
  kerberos    source {self.run_dir}/stack.env; kinit -kt $TARN_KEYTAB_ALICE alice@{demo_kerberos.REALM}
              curl --negotiate -u : {d['knox']['url']}/v2/models/identity
  tarn        add --principal alice@{demo_kerberos.REALM} --keytab $TARN_KEYTAB_ALICE (or kinit first)""", flush=True)
        print("  stop        make demo-down", flush=True)

    def _fleet_report(self, env: Dict[str, str]) -> str:
        """What the AM says and the tails of the containers' logs, for a failure message.
        (The minicluster's NodeManagers have no web UI, so `tarn logs` cannot fetch running
        containers' logs here: they are read from the NodeManagers' log folders.)"""
        out = []
        try:
            result = subprocess.run([str(VENV_BIN / "tarn"), "status", "--name", DEPLOYMENT, *self._login_args(env)],
                                    env=dict(env, TARN_TOKEN=self.state.data["token"]),
                                    capture_output=True, text=True, timeout=60)
            said = [line for line in (result.stdout + result.stderr).splitlines() if not HADOOP_LOG.match(line)]
            out.append("--- tarn status ---\n" + "\n".join(said[-30:]))
        except (OSError, subprocess.TimeoutExpired) as exc:
            out.append(f"--- tarn status --- {exc}")
        app_id = self.state.data.get("app_id", "")
        for log in sorted(self.run_dir.glob(f"hadoop/yarn/*/logs/{app_id}/*/*.log")) if app_id else []:
            out.append(f"--- {log.relative_to(self.run_dir)} (last lines) ---\n{tail(log, 15)}")
        return "\n".join(out)

    # ------------------------------------------------------------------ down

    def down(self) -> int:
        began = time.monotonic()
        data = self.state.data
        if data.get("app_id") and (self.run_dir / "hadoop.env").exists():
            print(f"==> tarn stop {data['app_id']} (drain, then shut the application down)", flush=True)
            t = time.monotonic()
            env = parse_hadoop_env(self.run_dir / "hadoop.env", os.environ)
            if self.kerberos:
                env.update({k: v for k, v in _read_exports(self.run_dir / "stack.env").items() if k != "PATH"})
            env.update(TARN_TOKEN=data.get("token", ""), PATH=f"{VENV_BIN}:{env['PATH']}")
            try:
                result = subprocess.run([str(VENV_BIN / "tarn"), "stop", "--name", DEPLOYMENT, "--app-id",
                                         data["app_id"], "--timeout", "30", *self._login_args(env)], env=env,
                                        capture_output=True,
                                        text=True, timeout=120)
                said = [line for line in (result.stdout + result.stderr).splitlines() if not HADOOP_LOG.match(line)]
                print("    " + "\n    ".join(said) + f" ({time.monotonic() - t:.1f} s)", flush=True)
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(f"    tarn stop did not finish ({exc}); the minicluster's shutdown ends the application",
                      flush=True)
            data.pop("app_id", None)
            self.state.save()
        for name in ("knox", "prometheus", "gateway-sync", "haproxy-authz", "authz"):
            if name in self.state.processes:
                print(f"==> stop {name} (pid {self.state.processes[name]['pid']})", flush=True)
                self.state.stop(name)
        mine = self.run_dir
        if self.stack_running:  # the stack is someone else's: it stays, and only the demo's folder must be empty
            mine = self.dir
        else:
            print("==> stack down (YARN/HDFS minicluster, HAProxy, ZooKeeper, Redis)", flush=True)
            t = time.monotonic()
            subprocess.run([str(STACK), "down", "--run-dir", str(self.run_dir)], check=False)
            print(f"    ({time.monotonic() - t:.1f} s)", flush=True)
        deadline = time.monotonic() + 30
        left = leftover_processes(mine)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = leftover_processes(mine)
        if left:
            print("demo: these processes are still running from " + str(mine) + ":\n  " + "\n  ".join(left),
                  file=sys.stderr)
            return 1
        self.state.path.unlink(missing_ok=True)
        print(f"demo down in {time.monotonic() - began:.1f} s; no process left in {mine}", flush=True)
        return 0

    def status(self) -> int:
        data = self.state.data
        if not data:
            print("the demo is not running")
            return 1
        ok = True
        for name, proc in self.state.processes.items():
            running = _alive(proc["pid"])
            ok &= running
            print(f"{name}: {'running' if running else 'DEAD'} (pid {proc['pid']}, log {proc['log']})")
        subprocess.run([str(STACK), "status", "--run-dir", str(self.run_dir)], check=False)
        if data.get("am_address"):
            print(f"application {data.get('app_id')}: dashboard {data['am_address']}/dashboard#token={data['token']}&user=alice")
        if data.get("prometheus_url"):
            print(f"prometheus: {data['prometheus_url']}")
        return 0 if ok else 1


def _basic(user: str) -> Dict[str, str]:
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()}


def _grpc_basic(user: str) -> Dict[str, str]:
    return {key.lower(): value for key, value in _basic(user).items()}  # gRPC metadata keys are lower case


def _grpc_answer(client, tensor) -> Optional[list]:
    """alice's identity over gRPC; an exception (the gRPC backend not filled yet) means not yet."""
    return client.infer("identity", [tensor], headers=_grpc_basic("alice")).as_numpy("OUTPUT0").tolist()


def _alive(pid: int) -> bool:
    from demo_support import alive
    return alive(pid)


def _read_exports(path: Path) -> Dict[str, str]:
    from tarnstack import read_env_file
    return read_env_file(path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"], nargs="?", default="up")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                        help="where the stack, the minicluster and the demo keep state and logs")
    parser.add_argument("--instances", type=int, default=1, help="Triton instances to start with (1 or 2)")
    parser.add_argument("--kerberos", action="store_true",
                        help="on the Kerberized stack (stack up --hadoop --kerberos): submit as alice with her keytab, "
                             "Knox with SPNEGO beside HAProxy (`make demo KERBEROS=1`)")
    parser.add_argument("--stack-running", action="store_true",
                        help="use the stack already up in --run-dir (start none; `down` leaves it up)")
    parser.add_argument("--submit-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for `tarn submit` (repeat it; --submit-arg=--flag for a flag)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "deploy" / "haproxy"))
    demo = Demo(args.run_dir, instances=args.instances, kerberos=args.kerberos, stack_running=args.stack_running,
                submit_args=args.submit_arg)
    try:
        if args.command == "up":
            demo.up()
            return 0
        if args.command == "down":
            return demo.down()
        return demo.status()
    except DemoError as exc:
        print(exc.report(), file=sys.stderr)
        if args.command == "up" and not isinstance(exc, AlreadyRunning):
            print(f"demo: what started is left running for inspection (logs in {demo.dir}); "
                  f"stop it with `deploy/local/demo down --run-dir {demo.run_dir}` or `make demo-down`",
                  file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ndemo: interrupted; stop what started with `deploy/local/demo down --run-dir {demo.run_dir}`",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
