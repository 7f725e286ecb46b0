"""The skein application spec `tarn submit` sends, built purely from the options.

Design choices (DESIGN.md asks each to be stated):

* Anti-affinity. skein has no placement constraints, so every eligible node gets its own
  skein service ("slot") with ``nodes: [host]``, ``relax_locality: false`` and at most one
  instance, which tarn-am scales between 0 and 1. Two Triton containers can then never
  share a node, and an instance beyond the number of eligible nodes is visibly blocked
  (``Blocked``, "anti-affinity") instead of waiting in YARN forever. Sizing requests to a
  whole node was rejected: it needs every node to be the same size and wastes what the
  Triton container does not use. Eligible nodes are read when submitting (RUNNING, in
  ``--node-label``, or ``--nodes``); a node added later needs a resubmit.
* Restarts. ``max_restarts: 0`` and ``allow_failures: true`` on every slot: skein neither
  restarts a container nor ends the application when one fails; tarn-am decides.
* The AM container. Its master script is tarn-am's supervisor (supervisor.py), which
  restarts tarn-am inside the same AM container, so a crash of tarn-am costs no Triton
  container.
* Python. The AM container (and on clusters without Docker, the Triton containers) need a
  Python with tarn installed. ``--python PATH`` names an interpreter present on every
  node: on the minicluster the nodes share this machine's filesystem, so the project
  venv's interpreter is the default. On a real cluster ``--python-env ENV.tar.gz`` ships a
  conda-pack archive, localized by YARN from HDFS and unpacked with ``conda-unpack``:
  conda-pack because the archive carries its own interpreter and libpython (venv-pack
  archives only symlink to a base interpreter that must already exist on every node
  at the same path, which is exactly what we cannot assume).
* Docker. With ``--runtime docker`` the Triton containers run in ``--image`` through YARN's
  Docker runtime: YARN_CONTAINER_RUNTIME_TYPE=docker, ..._DOCKER_IMAGE, ..._DOCKER_CONTAINER_NETWORK
  (host by default, so Triton's ports are the node's), ..._DOCKER_MOUNTS (the Hadoop
  configuration read-only, plus ``--docker-mount``); the image must contain
  ``tarn-node-agent`` (Python 3.10 in NVIDIA's image). ``--runtime process`` runs the agent as a
  plain process with the chosen Python: the minicluster has no Docker engine.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import skein

from tarn_shared.locations import parse_location

from ..containers import Slot
from ..model_copies import plan_text
from .launch_env import launch_env
from .options import SubmitOptions

PYENV_DIR = "pyenv"
APP_TYPE_TAG = "tarn"
DEFAULT_DOCKER_MOUNTS = ("/etc/hadoop/conf:/etc/hadoop/conf:ro",)
SECRET_ENV = ("TARN_AM_TOKEN", "TARN_AM_ADMIN_TOKEN", "TARN_AM_AUTHZ_GATEWAY_TOKEN")  # hidden by --dry-run


@dataclass(frozen=True)
class NodeInfo:
    host: str
    labels: frozenset = frozenset()
    gpus: Optional[int] = None  # total yarn.io/gpu, when known
    running: bool = True


def eligible_nodes(nodes: Sequence[NodeInfo], options: SubmitOptions) -> List[str]:
    """The hosts that may hold a Triton container, in a stable order."""
    if options.nodes:
        return sorted(dict.fromkeys(options.nodes))
    chosen = []
    for node in nodes:
        if not node.running:
            continue
        if options.node_label and options.node_label not in node.labels:
            continue
        if node.gpus is not None and node.gpus < options.gpus:
            continue
        chosen.append(node.host)
    return sorted(dict.fromkeys(chosen))


def slots_for(hosts: Sequence[str], placement_tag: str) -> List[Slot]:
    """One skein service per host, named after the placement tag and the host."""
    slots, taken = [], set()
    for host in hosts:
        base = f"{placement_tag}-{re.sub(r'[^a-z0-9-]', '-', host.lower())}".strip("-")
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        slots.append(Slot(name, host))
    return slots


@dataclass(frozen=True)
class PythonLauncher:
    """How a container starts Python: an interpreter on the node, or a shipped conda-pack."""

    interpreter: Optional[str] = None
    packed_env: Optional[str] = None  # local path or hdfs:// URI of the archive

    def files(self) -> Dict[str, skein.File]:
        if not self.packed_env:
            return {}
        return {PYENV_DIR: skein.File(source=self.packed_env, type="archive")}

    def prologue(self) -> str:
        if not self.packed_env:
            return ""
        # conda-unpack rewrites the prefixes baked into the environment; run it once.
        return (f"source {PYENV_DIR}/bin/activate && "
                f"{{ test -e {PYENV_DIR}/.unpacked || {{ {PYENV_DIR}/bin/conda-unpack && touch {PYENV_DIR}/.unpacked; }}; }}\n")

    def python(self) -> str:
        return f"{PYENV_DIR}/bin/python" if self.packed_env else shlex.quote(self.interpreter or "python3")


def launcher_for(options: SubmitOptions, default_interpreter: str) -> PythonLauncher:
    if options.python_env:
        return PythonLauncher(packed_env=options.python_env)
    return PythonLauncher(interpreter=options.python or default_interpreter)


def am_environment(options: SubmitOptions, slots: Sequence[Slot]) -> Dict[str, str]:
    """TARN_AM_* for tarn-am's Settings (settings.py)."""
    env = {
        "TARN_AM_DEPLOYMENT": options.name,
        "TARN_AM_SLOTS": ",".join(f"{s.service}={s.host}" for s in slots),
        "TARN_AM_ADDRESS": options.address,
        "TARN_AM_PORT": str(options.am_port),
        "TARN_AM_REDIS_URL": options.redis_url,
        "TARN_AM_MIN_INSTANCES": str(options.min_instances),
        "TARN_AM_MAX_INSTANCES": str(options.max_instances),
        "TARN_AM_INITIAL_INSTANCES": str(options.initial_instances),
        "TARN_AM_SCALE_UP": repr(options.scale_up),
        "TARN_AM_SCALE_DOWN": repr(options.scale_down),
        "TARN_AM_COOLDOWN_S": repr(options.cooldown_s),
        "TARN_AM_ZK_PATH": options.zk_path,
        "TARN_AM_HAPROXY_BACKEND": options.haproxy_backend,
        "TARN_AM_RANGER_APP_ID": options.ranger_app_id,
        "TARN_AM_RANGER_AUDIT": "true" if options.ranger_audit else "false",
        "TARN_AM_MODEL_REPOSITORY": options.model_repository,
        "TARN_AM_DRAIN_TIMEOUT_S": repr(options.drain_timeout_s),
        "TARN_AM_STABILIZATION_S": repr(options.stabilization_s),
        "TARN_AM_TELEMETRY_INTERVAL_S": repr(options.telemetry_interval_s),
        "TARN_AM_START_TIMEOUT_S": repr(options.start_timeout_s),
        "TARN_AM_HEARTBEAT_TIMEOUT_S": repr(options.heartbeat_timeout_s),
        "TARN_AM_BLOCKED_TIMEOUT_S": repr(options.blocked_timeout_s),
        "TARN_AM_AGENT_HEARTBEAT_INTERVAL_S": repr(options.agent_interval_s("agent_heartbeat_interval_s")),
        "TARN_AM_CRASH_LOOP_FAILURES": str(options.crash_loop_failures),
        "TARN_AM_CRASH_LOOP_WINDOW_S": repr(options.crash_loop_window_s),
        "TARN_AM_ALLOW_QUERY_TOKEN": "true" if options.allow_query_token else "false",
        "TARN_AM_PLACEMENT": options.placement,
        "TARN_AM_CONTAINER_MEMORY_MB": str(options.container_memory_mb),
    }
    optional = {
        "TARN_AM_ZK_ENSEMBLE": options.zk_ensemble,
        "TARN_AM_RANGER_SERVICE": options.ranger_service,
        "TARN_AM_AUTHZ_URL": options.authz_url,
        "TARN_AM_MODEL_PLAN": plan_text(options.model_plan) if options.model_plan else None,
        # Secrets travel in the spec, which skein stores in the submitter's private
        # staging directory; they are never put on a command line.
        "TARN_AM_TOKEN": options.token.get_secret_value() if options.token else None,
        "TARN_AM_ADMIN_TOKEN": options.admin_token.get_secret_value() if options.admin_token else None,
        "TARN_AM_AUTHZ_GATEWAY_TOKEN": (options.authz_gateway_token.get_secret_value()
                                        if options.authz_gateway_token else None),
    }
    env.update({k: v for k, v in optional.items() if v is not None})
    return env


def agent_environment(options: SubmitOptions) -> Dict[str, str]:
    """What the node-agent reads (its TARN_NODE_AGENT_* settings), plus the user's --env."""
    env = dict(options.env)
    env.update({
        "TARN_NODE_AGENT_DEPLOYMENT": options.name,
        "TARN_NODE_AGENT_REDIS_URL": options.redis_url,
        "TARN_NODE_AGENT_MODEL_REPOSITORY": options.model_repository,
        "TARN_NODE_AGENT_HTTP_PORT": str(options.port),
        "TARN_NODE_AGENT_GRPC_PORT": str(options.grpc_port),
        "TARN_NODE_AGENT_METRICS_PORT": str(options.metrics_port),
        "TARN_NODE_AGENT_TP": str(options.tp),
        "TARN_NODE_AGENT_PP": str(options.pp),
        "TARN_NODE_AGENT_MODEL_CONTROL_MODE": options.triton_model_control_mode,
        # The policy's period: submit refused an --agent-env that differs from it.
        "TARN_NODE_AGENT_TELEMETRY_INTERVAL_S": repr(options.telemetry_interval_s),
    })
    if options.secrets:
        env["TARN_NODE_AGENT_SECRETS"] = options.secrets
    if options.tritonserver:
        env["TARN_NODE_AGENT_TRITONSERVER"] = options.tritonserver
    if options.env:
        # Triton's environment, one KEY=VALUE per line: the agent keeps it apart from its own.
        env["TARN_NODE_AGENT_ENV"] = "\n".join(f"{k}={v}" for k, v in sorted(options.env.items()))
    env.update(options.agent_env)
    return env


def docker_environment(options: SubmitOptions) -> Dict[str, str]:
    mounts = list(DEFAULT_DOCKER_MOUNTS) + list(options.docker_mounts)
    return {
        "YARN_CONTAINER_RUNTIME_TYPE": "docker",
        "YARN_CONTAINER_RUNTIME_DOCKER_IMAGE": options.image or "",
        "YARN_CONTAINER_RUNTIME_DOCKER_CONTAINER_NETWORK": options.docker_network,
        "YARN_CONTAINER_RUNTIME_DOCKER_MOUNTS": ",".join(mounts),
        # The launch script below is the command; the image's entrypoint is not used.
        "YARN_CONTAINER_RUNTIME_DOCKER_RUN_OVERRIDE_DISABLE": "false",
    }


# Announce the node's name (YARN's NM_HOST), not whatever the container thinks it is.
_ADVERTISE = 'export TARN_NODE_AGENT_ADVERTISE_HOST="${TARN_NODE_AGENT_ADVERTISE_HOST:-$NM_HOST}"\n'


def triton_script(options: SubmitOptions, launcher: PythonLauncher) -> str:
    if options.runtime == "docker":
        # Inside the image (host network): its own Python 3.10 with tarn-node-agent installed.
        return _ADVERTISE + "exec tarn-node-agent\n"
    # Plain processes share the host's network namespace with every other container on
    # it: Triton binds the node's own address (on the minicluster each NodeManager has its
    # own loopback address, so both nodes can use the same ports).
    bind = (f'export TARN_NODE_AGENT_TRITON_BIND="${{TARN_NODE_AGENT_TRITON_BIND:-$({launcher.python()} -c '
            "'import os, socket; print(socket.gethostbyname(os.environ[\"NM_HOST\"]))')}\"\n")
    return launcher.prologue() + _ADVERTISE + bind + f"exec {launcher.python()} -m tarn_node_agent\n"


def token_file_systems(options: SubmitOptions) -> List[str]:
    """The HDFS file systems the containers read by name (repository, credential file): on a
    Kerberized cluster skein gets an HDFS delegation token for each (and the default one)."""
    found: List[str] = []
    for value in (options.model_repository, options.secrets):
        location = parse_location(value) if value else None
        if location is not None and location.hdfs_path is not None and location.authority:
            if f"hdfs://{location.authority}" not in found:
                found.append(f"hdfs://{location.authority}")
    return found


def build_spec(options: SubmitOptions, hosts: Sequence[str], launcher: PythonLauncher,
               extra_files: Optional[Mapping[str, str]] = None) -> skein.ApplicationSpec:
    slots = slots_for(hosts, options.placement_tag)
    triton_env = agent_environment(options)
    triton_files = {}
    if options.runtime == "docker":
        triton_env.update(docker_environment(options))
    else:
        triton_files = launcher.files()
    services = {
        slot.service: skein.Service(
            resources=skein.Resources(memory=options.container_memory_mb, vcores=options.container_vcores,
                                      gpus=options.gpus),
            script=triton_script(options, launcher),
            instances=0,  # tarn-am starts them: it owns the count
            env=launch_env(triton_env),
            files=dict(triton_files),
            max_restarts=0,
            allow_failures=True,
            node_label=options.node_label,
            nodes=[slot.host],
            relax_locality=False,
        )
        for slot in slots
    }
    master_files = launcher.files()
    master_files.update({k: skein.File(v) for k, v in (extra_files or {}).items()})
    master = skein.Master(
        resources=skein.Resources(memory=options.am_memory_mb, vcores=1),
        script=launcher.prologue() + f"exec {launcher.python()} -m tarn_am.supervisor\n",
        env=launch_env(am_environment(options, slots)),
        files=master_files,
    )
    return skein.ApplicationSpec(
        name=f"tarn-{options.name}",
        queue=options.queue,
        # No application-level label: skein would give it to the AM container too, which
        # needs no GPU node (and would hold one in an exclusive partition). The Triton
        # services carry it themselves.
        tags={APP_TYPE_TAG, f"tarn-deployment:{options.name}", f"placement:{options.placement_tag}"},
        master=master,
        services=services,
        file_systems=token_file_systems(options),
        # An AM container lost to its node is retried once by YARN (a new attempt; see README).
        max_attempts=2,
    )
