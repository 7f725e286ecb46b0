"""The tritonserver command line and environment, decided purely from the settings and the
staged repository's model configurations.

tritonserver has no tensor or pipeline parallel flags. For tp x pp > 1:
- TensorRT-LLM backend: one tritonserver rank per GPU under MPI, world size tp x pp, as
  NVIDIA's tensorrtllm_backend documents and does in ``scripts/launch_triton_server.py``
  (``mpirun --allow-run-as-root -n 1 tritonserver ... : -n 1 tritonserver ...``; ranks other
  than 0 load only the TensorRT-LLM models, in explicit mode, with their own python-backend
  shm prefix; ``--disable-auto-complete-config``). The engines must have been built for
  that tp and pp.
- vLLM backend: one tritonserver; the engine arguments in ``<model>/1/model.json`` carry
  ``tensor_parallel_size`` and ``pipeline_parallel_size`` (triton-inference-server/vllm_backend
  README, "Using multiple GPU cards"; vLLM's engine arguments of those names). The agent never
  writes into the model repository (on NFS it is every instance's source; it may be mounted
  read-only): the rewritten files go to a per-container overlay (overlay.py) and Triton serves
  that instead.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from tarn_shared.errors import ConfigError

TENSORRT_LLM = "tensorrtllm"
VLLM = "vllm"
_BACKEND_LINE = re.compile(r'^\s*backend\s*:\s*"([^"]+)"', re.MULTILINE)

# What Triton inherits from the agent's environment: the search paths the python-backend stub
# needs (PATH finds the models' interpreter, LD_LIBRARY_PATH its libpython), home, user, locale,
# time zone and temporary directory, and the CUDA / NVIDIA / Triton / MPI / NCCL / UCX settings
# a container image or YARN gives. Nothing else: python-backend model code can read all of
# Triton's environment, so never the agent's TARN_* settings (its Redis URL), its
# HADOOP_CREDSTORE_PASSWORD, YARN's delegation tokens (HADOOP_TOKEN_FILE_LOCATION) or a
# Kerberos ticket cache (KRB5CCNAME): Triton talks to neither Redis nor Hadoop.
INHERITED_NAMES = frozenset({"PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "HOME", "USER", "LOGNAME",
                             "LANG", "LANGUAGE", "TZ", "TMPDIR"})
INHERITED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "TRITON_", "NCCL_", "OMPI_", "OPAL_", "PMIX_", "UCX_", "HPCX_")
# Everything but health and metadata (which probes and HAProxy's checks use) needs the gateway
# key: tritonserver 2.51's --http-restricted-api / --grpc-restricted-protocol groups.
GATEWAY_KEY_HEADER = "tarn-gateway-key"
RESTRICTED_APIS = ("inference", "model-repository", "model-config", "shared-memory", "statistics",
                   "trace", "logging")


@dataclass(frozen=True)
class TritonPorts:
    http: int
    grpc: int
    metrics: int


@dataclass(frozen=True)
class TritonOptions:
    executable: str
    model_repository: Path
    bind: str
    ports: TritonPorts
    model_control_mode: str
    load_models: Sequence[str]
    exit_timeout_s: int
    extra_args: Sequence[str] = ()
    tp: int = 1
    pp: int = 1
    parallel_backend: str = "auto"
    mpirun: str = "mpirun"


@dataclass(frozen=True)
class LaunchPlan:
    argv: List[str]
    env: Dict[str, str]
    # Files rewritten (vLLM engine arguments), by path inside the repository: they go to the
    # overlay plan_launch was given, which the argv then names.
    rewrites: Dict[Path, str] = field(default_factory=dict)
    parallelism: str = "single"


def model_backend(config_text: str) -> Optional[str]:
    match = _BACKEND_LINE.search(config_text)
    return match.group(1) if match else None


def scrubbed_environment(agent_environ: Mapping[str, str], operator_env: Mapping[str, str],
                         secrets: Mapping[str, str]) -> Dict[str, str]:
    """Triton's environment: the inherited part of the agent's, then the operator's ``env``
    setting (``tarn submit --env``), then the mapped secrets. Neither of the last two may name
    an unsafe variable (tarn_shared.settings.unsafe_env_name): their checks refused it."""
    env = {k: v for k, v in agent_environ.items() if k in INHERITED_NAMES or k.startswith(INHERITED_PREFIXES)}
    env.update(operator_env)
    env.update(secrets)
    return env


def restriction_args(key: Optional[str]) -> List[str]:
    """The flags that make Triton answer RESTRICTED_APIS only with ``tarn-gateway-key: key``, which only
    the gateways add; none without a key. Triton takes the key on its command line only: it is
    never logged (TritonProcess logs the executable alone)."""
    if key is None:
        return []
    spec = f"{','.join(RESTRICTED_APIS)}:{GATEWAY_KEY_HEADER}={key}"
    return [f"--http-restricted-api={spec}", f"--grpc-restricted-protocol={spec}"]


def plan_launch(options: TritonOptions, backends: Mapping[str, Optional[str]],
                vllm_engine_args: Mapping[str, str], base_env: Mapping[str, str],
                gpu_count: Optional[int] = None, overlay: Optional[Path] = None) -> LaunchPlan:
    """``backends``: model -> backend from its config.pbtxt; ``vllm_engine_args``: model ->
    text of its ``1/model.json``. ``base_env`` is Triton's environment (scrubbed_environment, and
    for the process runtime CUDA_VISIBLE_DEVICES from gpu_allocation.py); ``gpu_count``:
    the GPUs allocated to the container, when known; ``overlay``: the repository Triton is
    given instead when files are rewritten."""
    env = dict(base_env)
    world = options.tp * options.pp
    if world > 1 and gpu_count is not None and gpu_count < world:
        raise ConfigError(f"tp x pp = {world} needs {world} GPUs, but {gpu_count} "
                          f"{'is' if gpu_count == 1 else 'are'} allocated to this container")
    if world == 1:
        return LaunchPlan(_server_args(options), env)
    chosen = options.parallel_backend
    if chosen == "auto":
        present = {b for b in backends.values() if b in (TENSORRT_LLM, VLLM)}
        if len(present) != 1:
            raise ConfigError(
                f"tp x pp = {world} needs exactly one of the {TENSORRT_LLM} or {VLLM} backends in the "
                f"repository (found: {', '.join(sorted(present)) or 'neither'}); set parallel_backend")
        chosen = present.pop()
    if chosen == TENSORRT_LLM:
        return _tensorrt_llm(options, backends, env)
    return _vllm(options, backends, vllm_engine_args, env, overlay)


def _server_args(options: TritonOptions, *, rank: Optional[int] = None,
                 explicit_models: Optional[Sequence[str]] = None, repository: Optional[Path] = None) -> List[str]:
    argv = [
        options.executable,
        f"--model-repository={repository or options.model_repository}",
        f"--http-address={options.bind}",
        f"--http-port={options.ports.http}",
        f"--grpc-address={options.bind}",
        f"--grpc-port={options.ports.grpc}",
        "--allow-metrics=true",
        f"--metrics-address={options.bind}",
        f"--metrics-port={options.ports.metrics}",
        f"--exit-timeout-secs={options.exit_timeout_s}",
    ]
    if explicit_models is not None:
        argv += ["--model-control-mode=explicit"] + [f"--load-model={m}" for m in explicit_models]
    else:
        argv.append(f"--model-control-mode={options.model_control_mode}")
        argv += [f"--load-model={m}" for m in options.load_models]
        if options.model_control_mode == "explicit":
            # Models load and unload while it serves: a load under way must not make the whole
            # server unready (strict readiness would), or the agent and HAProxy's checks take
            # the instance, and every model it serves, out of service. Models' own readiness
            # is routed per model.
            argv.append("--strict-readiness=false")
    if rank is not None:
        argv += ["--disable-auto-complete-config", f"--backend-config=python,shm-region-prefix-name=prefix{rank}_"]
    return argv + list(options.extra_args)


def _tensorrt_llm(options: TritonOptions, backends: Mapping[str, Optional[str]], env: Dict[str, str]) -> LaunchPlan:
    trtllm_models = sorted(m for m, b in backends.items() if b == TENSORRT_LLM)
    if not trtllm_models:
        raise ConfigError("parallel_backend is tensorrtllm but no model uses backend \"tensorrtllm\"")
    world = options.tp * options.pp
    argv = [options.mpirun, "--allow-run-as-root"]
    for rank in range(world):
        if rank:
            argv.append(":")
        argv += ["-n", "1"] + _server_args(options, rank=rank, explicit_models=None if rank == 0 else trtllm_models)
    return LaunchPlan(argv, env, parallelism=f"{TENSORRT_LLM} mpi world_size={world}")


def _vllm(options: TritonOptions, backends: Mapping[str, Optional[str]], engine_args: Mapping[str, str],
          env: Dict[str, str], overlay: Optional[Path]) -> LaunchPlan:
    models = sorted(m for m, b in backends.items() if b == VLLM)
    if not models:
        raise ConfigError("parallel_backend is vllm but no model uses backend \"vllm\"")
    if overlay is None:
        raise ConfigError("tp x pp > 1 with vLLM rewrites model.json, which needs an overlay directory")
    rewrites = {}
    for model in models:
        text = engine_args.get(model)
        if text is None:
            raise ConfigError(f"vLLM model {model!r} has no 1/model.json with its engine arguments")
        rewrites[Path(model) / "1" / "model.json"] = with_parallelism(text, options.tp, options.pp, model)
    return LaunchPlan(_server_args(options, repository=overlay), env, rewrites,
                      parallelism=f"{VLLM} tensor_parallel_size={options.tp} pipeline_parallel_size={options.pp}")


def with_parallelism(engine_args_json: str, tp: int, pp: int, model: str = "?") -> str:
    try:
        args = json.loads(engine_args_json)
    except ValueError as exc:
        raise ConfigError(f"vLLM model {model!r}: model.json is not JSON ({exc})") from None
    if not isinstance(args, dict):
        raise ConfigError(f"vLLM model {model!r}: model.json is not a JSON object")
    args["tensor_parallel_size"] = tp
    args["pipeline_parallel_size"] = pp
    return json.dumps(args, indent=2, sort_keys=True) + "\n"
