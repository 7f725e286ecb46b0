"""The real YARN + HDFS minicluster for tests, started through deploy/local/hadoop/minicluster.

Other test folders reuse it with
    from tests.hadoop.cluster import hadoop_cluster, webhdfs  # noqa: F401 (fixtures)
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HADOOP_DIR = REPO_ROOT / "deploy" / "local" / "hadoop"
MINICLUSTER = HADOOP_DIR / "minicluster"
CREDENTIAL = HADOOP_DIR / "credential"
SHARED_ENV_FILE = REPO_ROOT / "deploy" / "local" / "run" / "hadoop.env"
START_TIMEOUT_S = 300
HDFS_USER = "root"  # the user the minicluster runs as: its HDFS superuser

_environ_lock = threading.Lock()


@dataclass(frozen=True)
class HadoopCluster:
    conf_dir: Path
    webhdfs_url: str
    default_fs: str
    rm_webapp_url: str
    nodemanagers: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)  # os.environ plus hadoop.env, for subprocesses
    run_dir: Path | None = None  # set when these tests started it (and will stop it)

    @property
    def namenode_authority(self) -> str:
        """host:port of the NameNode RPC address, as jceks://hdfs@AUTHORITY/... wants it."""
        return urlparse(self.default_fs).netloc

    def webhdfs_client(self, user: str = HDFS_USER):
        import hdfs

        return hdfs.InsecureClient(self.webhdfs_url, user=user)

    @contextlib.contextmanager
    def environ(self) -> Iterator[None]:
        """os.environ as hadoop.env sets it, e.g. while skein starts its Java driver
        (it reads JAVA_HOME and runs `yarn classpath --glob` from the process environment)."""
        with _environ_lock:
            saved = dict(os.environ)
            os.environ.update(self.env)
            try:
                yield
            finally:
                os.environ.clear()
                os.environ.update(saved)

    def skein_client(self, **kwargs):
        import skein

        with self.environ():
            return skein.Client(**kwargs)

    def yarn(self):
        """The tests' own skein client on this cluster, shared: each skein client starts a Java
        driver (seconds on a busy machine), and every deployment's teardown needs one. Never
        close it (no ``with``): stop_cluster or the session's end does."""
        key = str(self.conf_dir.resolve())
        if key not in _shared_clients:
            _shared_clients[key] = self.skein_client(log=str(self.conf_dir.parent / "tests-skein-driver.log"))
        return _shared_clients[key]

    def kill_application(self, app_id: str) -> None:
        """Kill ``app_id`` for a teardown, which goes on whatever happens; a shared driver that
        failed is replaced once."""
        for _ in range(2):
            try:
                self.yarn().kill_application(app_id)
                return
            except Exception:  # noqa: BLE001 - skein's errors, or its driver gone
                close_shared_client(self.conf_dir)

    def running_nodemanagers(self) -> int:
        import json

        url = f"{self.rm_webapp_url}/ws/v1/cluster/nodes?states=RUNNING"
        with urllib.request.urlopen(url, timeout=5) as response:
            nodes = json.load(response).get("nodes") or {}
        return len(nodes.get("node") or [])


_shared_clients: dict[str, object] = {}


def close_shared_client(conf_dir: Path) -> None:
    client = _shared_clients.pop(str(Path(conf_dir).resolve()), None)
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - its driver may be gone already
            pass


def pytest_sessionfinish(session, exitstatus) -> None:
    """Close the drivers of clusters that no fixture here stopped (another stack's), while grpc
    is still whole: skein's ``__del__`` at interpreter exit fails."""
    for conf_dir in list(_shared_clients):
        close_shared_client(Path(conf_dir))


def parse_env_file(path: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values a shell gets from `source hadoop.env` (export K='V' lines, PATH prepended)."""
    env = dict(os.environ if base is None else base)
    for line in path.read_text().splitlines():
        if not line.startswith("export "):
            continue
        key, _, value = line[len("export "):].partition("=")
        if key == "PATH":
            prefix = value.split(":", 1)[0].strip("'\"")
            env["PATH"] = f"{prefix}:{env.get('PATH', '')}"
        else:
            env[key] = value.strip("'")
    return env


def cluster_from_env(env: Mapping[str, str], run_dir: Path | None = None) -> HadoopCluster:
    return HadoopCluster(
        conf_dir=Path(env["HADOOP_CONF_DIR"]),
        webhdfs_url=env["WEBHDFS_URL"],
        default_fs=env["HDFS_DEFAULT_FS"],
        rm_webapp_url=env["YARN_RM_WEBAPP_URL"],
        nodemanagers=tuple(env["TARN_HADOOP_NODEMANAGERS"].split(",")),
        env=dict(env),
        run_dir=run_dir,
    )


def running_cluster(env_file: Path = SHARED_ENV_FILE) -> HadoopCluster | None:
    """A cluster already started with `minicluster up` (e.g. by the stack), if it answers."""
    if not env_file.exists():
        return None
    try:
        cluster = cluster_from_env(parse_env_file(env_file))
        if cluster.running_nodemanagers() < len(cluster.nodemanagers):
            return None
        urllib.request.urlopen(f"{cluster.webhdfs_url}/webhdfs/v1/?op=GETFILESTATUS&user.name={HDFS_USER}",
                               timeout=5).close()
    except (OSError, KeyError, ValueError):
        return None
    return cluster


def start_cluster(run_dir: Path, timeout_s: float = START_TIMEOUT_S, node_labels: Sequence[str] = ()) -> HadoopCluster:
    """``node_labels``: ``HOST=LABEL`` items (YARN node labels on, those NodeManagers labelled)."""
    labels = [arg for item in node_labels for arg in ("--node-label", item)]
    result = subprocess.run([str(MINICLUSTER), "up", "--run-dir", str(run_dir),
                             "--timeout", str(timeout_s), *labels],
                            capture_output=True, text=True, timeout=timeout_s + 120)
    if result.returncode != 0:
        raise RuntimeError(f"minicluster up failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    print(result.stdout.strip())
    return cluster_from_env(parse_env_file(run_dir / "hadoop.env"), run_dir=run_dir)


def stop_cluster(run_dir: Path) -> None:
    close_shared_client(run_dir / "conf")
    result = subprocess.run([str(MINICLUSTER), "down", "--run-dir", str(run_dir)],
                            capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise RuntimeError(f"minicluster down failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def create_jceks(cluster: HadoopCluster, hdfs_path: str, secrets: Mapping[str, str],
                 store_password: str | None = None) -> str:
    """Write `secrets` (alias -> value) into a JCEKS file in HDFS with Hadoop's own
    CredentialShell (`hadoop credential create`); returns the provider URI.
    Without store_password the store uses Hadoop's default password, "none"."""
    provider = f"jceks://hdfs@{cluster.namenode_authority}{hdfs_path}"
    env = dict(cluster.env)
    if store_password is not None:
        env["HADOOP_CREDSTORE_PASSWORD"] = store_password
    for alias, value in secrets.items():
        result = subprocess.run([str(CREDENTIAL), "create", alias, "--value", value,
                                 "--provider", provider],
                                env=env, capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or "successfully created" not in result.stdout:
            raise RuntimeError(f"credential create {alias} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")
    return provider


@pytest.fixture(scope="session")
def hadoop_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HadoopCluster]:
    existing = running_cluster()
    if existing is not None:
        yield existing
        return
    # Short path: container work dirs live below it.
    run_dir = tmp_path_factory.mktemp("hadoop", numbered=True)
    cluster = start_cluster(run_dir)
    try:
        yield cluster
    finally:
        stop_cluster(run_dir)


@pytest.fixture(scope="session")
def webhdfs(hadoop_cluster: HadoopCluster):
    return hadoop_cluster.webhdfs_client()


def container_processes(yarn_container_id: str) -> list[int]:
    """PIDs working in a YARN container's directory (the minicluster runs containers as plain
    processes): its launch script, the node-agent, tritonserver and its stubs."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").rstrip("/").endswith(yarn_container_id):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def kill_container(yarn_container_id: str) -> list[int]:
    """SIGKILL every process of the container, as a node failure would; returns their PIDs."""
    pids = container_processes(yarn_container_id)
    assert pids, f"no process runs in {yarn_container_id}'s directory"
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
