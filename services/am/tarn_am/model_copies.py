"""Per-model desired copies (``tarn submit --placement per-model``): the deployment file
``--models models.yaml``, the flags' defaults, and the resolved plan tarn-am receives.

    default:            # optional; else --model-min-copies, --model-max-copies, --model-memory
      min: 1
      max: 3
      memory: 2GiB      # declared footprint, used until an agent measures the model
      queue_ms: 100     # target queue time per request (else --model-queue-time), scaling's target
      idle_s: 60        # with min: 0, seconds without demand before the last copy unloads (1..60, default 60)
    models:             # with a file, the deployment's models are these (all of the repository without one)
      bert: {min: 0, max: 4, memory: 3GiB}
      resnet: {}

Validated with pydantic; every problem is one line naming the model and the field."""
from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Dict, List, Optional

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator

from tarn_shared.errors import ConfigError

QUEUE_TIME_US = 100_000.0  # the node-agent's target_queue_time_us: what load 1.0 means there
IDLE_MIN_S, IDLE_MAX_S = 1.0, 60.0  # models.yaml idle_s: at most model_scaling's stable window (60 s)
MODEL_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")  # the node-agent's rule for a model directory


class CopiesEntry(BaseModel):
    """One model's line of the file (or its ``default``); absent fields fall back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: Optional[int] = Field(None, ge=0)
    max: Optional[int] = Field(None, ge=1)
    memory: Optional[ByteSize] = Field(None, gt=0)
    queue_ms: Optional[float] = Field(None, gt=0, allow_inf_nan=False)
    idle_s: Optional[float] = Field(None, ge=IDLE_MIN_S, le=IDLE_MAX_S, allow_inf_nan=False)


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: CopiesEntry = Field(default_factory=CopiesEntry)
    models: Dict[str, CopiesEntry] = Field(min_length=1)

    @field_validator("models", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, dict):
            value = {k: ({} if v is None else v) for k, v in value.items()}  # "resnet:" alone means defaults
            for name in value:
                if not isinstance(name, str) or not MODEL_NAME.match(name):
                    raise ValueError(f"{name!r} is not a Triton model name (letters, digits, '_', '.', '-')")
        return value


class ModelTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_copies: int = Field(ge=0)
    max_copies: int = Field(ge=1)
    memory_bytes: int = Field(gt=0)  # declared; the agents' measurement replaces it
    # model_scaling's target; the default (the node-agent's) keeps plans from before it readable
    target_queue_time_us: float = Field(QUEUE_TIME_US, gt=0, allow_inf_nan=False)
    # with min_copies 0: how long without demand before the last copy goes (None: the stable window)
    idle_s: Optional[float] = Field(None, ge=IDLE_MIN_S, le=IDLE_MAX_S, allow_inf_nan=False)


class ModelPlan(BaseModel):
    """What tarn-am places: ``models`` by name; ``default`` for any other model of the
    repository (None when the file lists the deployment's models)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Optional[ModelTarget] = None
    models: Dict[str, ModelTarget] = Field(default_factory=dict)

    def target_for(self, model: str) -> Optional[ModelTarget]:
        return self.models.get(model, self.default)


def read_models_file(path: str) -> object:
    """The YAML document of ``--models``; unreadable or malformed YAML is one ConfigError."""
    import yaml  # skein's own dependency; only `tarn submit --models` needs it

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"invalid submit options:\n  --models: cannot read {path}: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"invalid submit options:\n  --models: {path} is not YAML{line}") from None
    return {} if document is None else document


def resolve(file: Optional[ModelsFile], min_copies: int, max_copies: int, memory_bytes: Optional[int],
            queue_ms: float = QUEUE_TIME_US / 1000) -> tuple[Optional[ModelPlan], List[str]]:
    """The plan from the file over the flags' defaults, and its problems (one line each)."""
    problems: List[str] = []
    idle_s: Optional[float] = None  # only a file sets it (its default, or a model's line)

    def target(label: str, entry: CopiesEntry) -> Optional[ModelTarget]:
        low = entry.min if entry.min is not None else min_copies
        high = entry.max if entry.max is not None else max_copies
        memory = entry.memory if entry.memory is not None else memory_bytes
        queue_us = (entry.queue_ms if entry.queue_ms is not None else queue_ms) * 1000
        idle = entry.idle_s if entry.idle_s is not None else (idle_s if low == 0 else None)  # default's: min 0 only
        before = len(problems)
        if entry.idle_s is not None and low > 0:
            problems.append(f"{label}: idle_s ({entry.idle_s:g}) is the wait before scale to zero and needs "
                            f"min: 0 (min copies is {low})")
        if low > high:
            problems.append(f"{label}: min copies ({low}) is above max copies ({high})")
        if memory is None:
            problems.append(f"{label}: needs a declared memory (or --model-memory): its footprint until "
                            "an agent measures it")
        return ModelTarget(min_copies=low, max_copies=high, memory_bytes=int(memory),
                           target_queue_time_us=queue_us, idle_s=idle) if len(problems) == before else None

    if file is None:
        default = target("--model-min-copies/--model-max-copies", CopiesEntry())
        return (ModelPlan(default=default) if default else None), problems
    fallback = file.default
    min_copies = fallback.min if fallback.min is not None else min_copies
    max_copies = fallback.max if fallback.max is not None else max_copies
    memory_bytes = fallback.memory if fallback.memory is not None else memory_bytes
    queue_ms = fallback.queue_ms if fallback.queue_ms is not None else queue_ms
    idle_s = fallback.idle_s
    models = {name: target(f"--models: model {name!r}", entry) for name, entry in sorted(file.models.items())}
    if problems:
        return None, problems
    return ModelPlan(models={k: v for k, v in models.items() if v is not None}), problems


def resolve_plan(options) -> tuple[Optional[ModelPlan], List[str]]:
    """The plan of SubmitOptions ``options`` (its placement flags and file)."""
    return resolve(options.models, options.model_min_copies, options.model_max_copies or options.max_instances,
                   options.model_memory, options.model_queue_ms or QUEUE_TIME_US / 1000)


def placement_problems(options) -> List[str]:
    """What per-model mode asks of SubmitOptions' other flags, and the plan's own problems."""
    given = [flag for flag, value in (("--model-max-copies", options.model_max_copies),
                                      ("--model-memory", options.model_memory), ("--models", options.models),
                                      ("--model-queue-time", options.model_queue_ms))
             if value is not None]
    given += ["--model-min-copies"] if "model_min_copies" in options.model_fields_set else []
    if options.placement != "per-model":
        return [f"{flag} needs --placement per-model" for flag in given]
    plan, problems = resolve_plan(options)
    if options.model_control_mode not in (None, "explicit"):
        problems.append(f"--model-control-mode {options.model_control_mode} conflicts with --placement "
                        "per-model, which runs Triton with --model-control-mode explicit")
    targets = dict(plan.models) if plan else {}
    if plan is not None and plan.default is not None:
        targets["(default)"] = plan.default
    for name, t in sorted(targets.items()):
        if t.min_copies > options.max_instances:
            problems.append(f"model {name!r}: min copies ({t.min_copies}) cannot be placed on "
                            f"--max-instances {options.max_instances} (at most one copy per instance)")
    return problems


def plan_text(plan: ModelPlan) -> str:
    """The plan as TARN_AM_MODEL_PLAN carries it: base64 of its JSON, because YARN writes the
    container's environment into a shell script between double quotes it does not escape."""
    return base64.urlsafe_b64encode(plan.model_dump_json().encode()).decode()


def plan_from_env(value: object) -> object:
    """TARN_AM_MODEL_PLAN's value: plan_text's base64, or the JSON itself; other input as is."""
    if not isinstance(value, str) or not value.strip():
        return value if not isinstance(value, str) else None
    text = value.strip()
    if not text.startswith("{"):
        try:
            text = base64.urlsafe_b64decode(text.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            raise ValueError("is neither JSON nor base64 of JSON") from None
    return ModelPlan.model_validate_json(text)
