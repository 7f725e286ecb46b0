"""Before Triton starts: its GPUs, the secrets, the staged model repository and the launch
plan. Each is read through its adapter (NVML, HDFS) and decided by a pure function elsewhere
(gpu_allocation, secrets, repository, launch). Every call here blocks: the agent runs
``prepare`` in a worker thread."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

from tarn_shared.errors import ConfigError
from tarn_shared.hadoop_conf import kerberos_enabled, read_hadoop_conf, webhdfs_urls_from_conf
from tarn_shared.jceks import decode_keystore, store_password

from .gpu_allocation import CUDA, Selection, triton_environment
from .hdfs import Hdfs
from .launch import (LaunchPlan, TritonOptions, TritonPorts, model_backend, plan_launch, restriction_args,
                     scrubbed_environment)
from .nvml import GpuReader
from .overlay import build_overlay
from .secrets import GATEWAY_KEY_ALIAS, SecretEnvironment, map_to_environment
from .settings import NodeAgentSettings
from .node_cache import NodeCache, node_cache_dir
from .staging import StagedRepository, Stager, StagingProgress, use_in_place

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    staged: StagedRepository
    plan: LaunchPlan
    secret_names: List[str]  # the values are in plan.env only
    gateway_key: Optional[str] = field(default=None, repr=False)  # the agent's own calls send it too


def prepare(settings: NodeAgentSettings, environ: Mapping[str, str], progress: StagingProgress,
            gpu: Optional[GpuReader] = None) -> Prepared:
    """Raises ConfigError for a setting that cannot work (GPUs named that are not this
    container's too), the agent's own errors (staging, secrets) or UnavailableError for what
    HDFS refused. With ``gpu``, Triton's GPUs are chosen first (before minutes of staging)."""
    selection = choose_gpus(gpu, {**environ, **settings.extra_env()}) if gpu is not None else None
    secrets = read_secrets(settings, environ)
    gateway_key = checked_gateway_key(settings, secrets)
    staged = stage(settings, environ, progress)
    env = scrubbed_environment(environ, settings.extra_env(), secrets.values)
    if selection is not None:
        env = triton_environment(selection, env)
    plan = plan_for(settings, staged, env, selection.gpu_count if selection else None, gateway_key)
    return Prepared(staged, plan, secrets.names, gateway_key)


def checked_gateway_key(settings: NodeAgentSettings, secrets: SecretEnvironment) -> Optional[str]:
    if secrets.gateway_key is None:
        if settings.require_gateway_key:
            raise ConfigError(f"require_gateway_key is set but no credential file (secrets) holds a "
                              f"{GATEWAY_KEY_ALIAS} alias")
        log.warning(f"no {GATEWAY_KEY_ALIAS} in the credential file: Triton answers anyone who reaches its ports")
    return secrets.gateway_key


def choose_gpus(gpu: GpuReader, environ: Mapping[str, str]) -> Selection:
    selection = gpu.select(environ)
    log.info("GPUs chosen", extra={"gpus": selection.describe(),
                                   "cuda_visible_devices": triton_environment(selection, environ).get(CUDA)})
    return selection


def hdfs_client(settings: NodeAgentSettings, environ: Mapping[str, str], authority: str, purpose: str) -> Hdfs:
    conf = read_hadoop_conf(environ.get("HADOOP_CONF_DIR"))
    url = settings.webhdfs_url or webhdfs_urls_from_conf(conf, authority)
    if not url:
        raise ConfigError("webhdfs_url is not set and $HADOOP_CONF_DIR/hdfs-site.xml names no "
                          "dfs.namenode.http-address")
    return Hdfs.connect(url, auth=settings.hdfs_auth, user=settings.hdfs_user, authority=authority,
                        environ=environ, pool_size=settings.staging_parallelism, kerberized=kerberos_enabled(conf),
                        purpose=purpose)


def read_secrets(settings: NodeAgentSettings, environ: Mapping[str, str]) -> SecretEnvironment:
    location = settings.secrets_location
    if location is None:
        return SecretEnvironment({})
    hdfs = hdfs_client(settings, environ, location.authority, "the credential file, --secrets")
    data = hdfs.read_bytes(location.hdfs_path)
    mapped = map_to_environment(decode_keystore(data, store_password(environ), location.hdfs_path))
    log.info("secrets read", extra={"variables": mapped.names, "ignored_aliases": mapped.ignored_aliases,
                                    "gateway_key": mapped.gateway_key is not None})
    return mapped


def stage(settings: NodeAgentSettings, environ: Mapping[str, str], progress: StagingProgress) -> StagedRepository:
    location = settings.repository
    if location.local_path is not None:
        return use_in_place(location.local_path)
    cache_dir = settings.staging_cache_dir or node_cache_dir(settings.staging_dir, environ.get("LOCAL_DIRS"))
    cache = NodeCache(cache_dir, int(settings.staging_cache_max_gb * (1 << 30)))
    hdfs = hdfs_client(settings, environ, location.authority, "the model repository")
    stager = Stager(hdfs, settings.staging_dir, cache=cache,
                    parallelism=settings.staging_parallelism, verify=settings.verify_checksums, progress=progress,
                    range_bytes=settings.staging_range_mb << 20)
    return stager.stage(location.uri, location.hdfs_path)


def plan_for(settings: NodeAgentSettings, staged: StagedRepository, env: Dict[str, str],
             gpu_count: Optional[int] = None, gateway_key: Optional[str] = None) -> LaunchPlan:
    """The launch plan for the staged models; the files it rewrites go to this container's
    overlay, never into the repository. With ``gateway_key``, Triton answers only requests
    that carry it (last, after the operator's triton_args)."""
    s = settings
    backends: Dict[str, Optional[str]] = {}
    engine_args: Dict[str, str] = {}
    for model in staged.models:
        config = staged.path / model / "config.pbtxt"
        backends[model] = model_backend(config.read_text(errors="replace")) if config.is_file() else None
        engine = staged.path / model / "1" / "model.json"
        if engine.is_file():
            engine_args[model] = engine.read_text()
    options = TritonOptions(
        executable=s.tritonserver, model_repository=staged.path, bind=s.triton_bind,
        ports=TritonPorts(http=s.http_port, grpc=s.grpc_port, metrics=s.metrics_port),
        model_control_mode=s.model_control_mode, load_models=s.load_models, exit_timeout_s=s.exit_timeout_s,
        extra_args=[*s.triton_args, *restriction_args(gateway_key)], tp=s.tp, pp=s.pp, parallel_backend=s.parallel_backend, mpirun=s.mpirun)
    overlay = s.overlay_dir / (s.container_id or "container")
    plan = plan_launch(options, backends, engine_args, env, gpu_count=gpu_count, overlay=overlay)
    if plan.rewrites:
        build_overlay(staged.path, overlay, plan.rewrites)
    return plan
