"""`tarn submit --placement per-model`: per-model copies from flags and a models.yaml, each
problem named in one line, and what the spec hands tarn-am and the node-agents."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tarn_shared.errors import ConfigError

from tarn_am.cli.arguments import build_parser, submit_values
from tarn_am.cli.options import SubmitOptions
from tarn_am.cli.spec import build_spec, launcher_for
from tarn_am.model_copies import ModelPlan, ModelTarget, plan_from_env, plan_text
from tarn_am.settings import AmSettings

GIB = 1 << 30
BASE = ["submit", "--model-repository", "/nfs/models", "--runtime", "process", "--max-instances", "4"]
FILE = """\
default:
  memory: 2GiB
models:
  bert: {min: 0, max: 3, memory: 3GiB}
  resnet:
  llm: {min: 2}
"""


def options(argv, tmp_path: Path = None, text: str = None) -> SubmitOptions:
    if text is not None:
        (tmp_path / "models.yaml").write_text(text)
        argv = argv + ["--models", str(tmp_path / "models.yaml")]
    return SubmitOptions.parse(submit_values(build_parser().parse_args(argv), {}))


def problem(argv, tmp_path=None, text=None) -> str:
    with pytest.raises(ConfigError) as caught:
        options(argv, tmp_path, text)
    return str(caught.value)


def test_the_default_stays_every_model_on_every_instance():
    o = options(BASE)
    assert o.placement == "all-models" and o.model_plan is None and o.triton_model_control_mode == "none"
    assert options(BASE + ["--model-control-mode", "poll"]).triton_model_control_mode == "poll"


def test_per_model_without_a_file_gives_every_repository_model_the_flags_defaults():
    o = options(BASE + ["--placement", "per-model", "--model-memory", "1.5GiB", "--model-min-copies", "0"])
    assert o.triton_model_control_mode == "explicit"
    assert o.model_plan == ModelPlan(default=ModelTarget(min_copies=0, max_copies=4, memory_bytes=int(1.5 * GIB)))


def test_the_file_overrides_the_flags_model_by_model_and_lists_the_deployments_models(tmp_path):
    o = options(BASE + ["--placement", "per-model", "--model-max-copies", "2"], tmp_path, FILE)
    plan = o.model_plan
    assert plan.default is None and sorted(plan.models) == ["bert", "llm", "resnet"]
    assert plan.models["bert"] == ModelTarget(min_copies=0, max_copies=3, memory_bytes=3 * GIB)
    assert plan.models["resnet"] == ModelTarget(min_copies=1, max_copies=2, memory_bytes=2 * GIB)
    assert plan.models["llm"] == ModelTarget(min_copies=2, max_copies=2, memory_bytes=2 * GIB)
    assert plan.target_for("other") is None


@pytest.mark.parametrize("extra, text, message", [
    (["--placement", "per-model"], None, "needs a declared memory (or --model-memory)"),
    (["--placement", "per-model", "--model-memory", "1GiB", "--model-min-copies", "3", "--model-max-copies", "2"],
     None, "min copies (3) is above max copies (2)"),
    (["--placement", "per-model", "--model-memory", "lots"], None, "--model-memory: "),
    (["--placement", "per-model", "--model-memory", "1GiB", "--model-control-mode", "none"], None,
     "--model-control-mode none conflicts with --placement per-model"),
    (["--model-memory", "1GiB"], None, "--model-memory needs --placement per-model"),
    (["--model-min-copies", "2"], None, "--model-min-copies needs --placement per-model"),
    (["--placement", "per-model"], "models:\n  bert: {min: 1}\n", "model 'bert': needs a declared memory"),
    (["--placement", "per-model"], "models:\n  bert: {min: 1, max: 0, memory: 1GiB}\n", "--models models.bert.max: "),
    (["--placement", "per-model"], "models:\n  bert: {copies: 2, memory: 1GiB}\n", "--models models.bert.copies: "),
    (["--placement", "per-model"], "models:\n  bert: {memory: -1}\n", "--models models.bert.memory: "),
    (["--placement", "per-model"], "models:\n  ../etc: {memory: 1GiB}\n", "is not a Triton model name"),
    (["--placement", "per-model"], "models: {}\n", "--models models: "),
    (["--placement", "per-model"], "- bert\n", "--models: "),
    (["--placement", "per-model"], "models:\n  bert: {min: 5, max: 6, memory: 1GiB}\n",
     "model 'bert': min copies (5) cannot be placed on --max-instances 4"),
])
def test_bad_per_model_settings_are_named_in_one_line(tmp_path, extra, text, message):
    text_problem = problem(BASE + extra, tmp_path, text)
    assert message in text_problem, text_problem
    assert "Traceback" not in text_problem


def test_an_unreadable_or_malformed_models_file_is_one_clear_error(tmp_path):
    assert "cannot read" in problem(BASE + ["--placement", "per-model", "--models", str(tmp_path / "none.yaml")])
    assert "is not YAML (line " in problem(BASE + ["--placement", "per-model"], tmp_path, "models:\n  bert: [\n")


def test_the_spec_runs_triton_explicit_and_hands_tarn_am_the_plan(tmp_path):
    o = options(BASE + ["--placement", "per-model"], tmp_path, FILE)
    spec = build_spec(o, ["nm1"], launcher_for(o, "/usr/bin/python3"))
    agent = next(iter(spec.services.values())).env
    assert agent["TARN_NODE_AGENT_MODEL_CONTROL_MODE"] == "explicit"
    master = spec.master.env
    assert master["TARN_AM_PLACEMENT"] == "per-model"
    assert '"' not in master["TARN_AM_MODEL_PLAN"]  # YARN's launch script would strip the quotes
    assert plan_from_env(master["TARN_AM_MODEL_PLAN"]) == o.model_plan


def test_tarn_am_reads_the_plan_from_its_environment(monkeypatch, tmp_path):
    o = options(BASE + ["--placement", "per-model"], tmp_path, FILE)
    monkeypatch.setenv("TARN_AM_DEPLOYMENT", "d")
    monkeypatch.setenv("TARN_AM_PLACEMENT", "per-model")
    monkeypatch.setenv("TARN_AM_MODEL_PLAN", plan_text(o.model_plan))
    settings = AmSettings()
    assert settings.placement == "per-model" and settings.model_plan == o.model_plan
    monkeypatch.setenv("TARN_AM_MODEL_PLAN", "{models:{bert:{}}}")  # JSON that lost its quotes
    with pytest.raises(ConfigError, match="TARN_AM_MODEL_PLAN"):
        AmSettings.load()


def test_the_tarn_command_refuses_a_bad_models_file_in_one_line_with_exit_2(tmp_path):
    (tmp_path / "models.yaml").write_text("models:\n  bert: {min: 3, max: 1, memory: 1GiB}\n")
    done = run_tarn(tmp_path, *BASE, "--placement", "per-model", "--models", str(tmp_path / "models.yaml"),
                    "--dry-run", "--nodes", "n1")
    assert done.returncode == 2, done.stderr
    assert "model 'bert': min copies (3) is above max copies (1)" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def run_tarn(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    tarn = str(Path(sys.executable).parent / "tarn")
    return subprocess.run([tarn, *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def test_a_per_model_submit_without_a_models_file_is_refused_but_its_dry_run_shows_the_plan(tmp_path):
    (tmp_path / "models.yaml").write_text(FILE)
    done = run_tarn(tmp_path, *BASE, "--placement", "per-model", "--model-memory", "1GiB")
    assert done.returncode == 2 and "--placement per-model needs --models FILE" in done.stderr, done.stderr
    argv = [*BASE, "--placement", "per-model", "--models", str(tmp_path / "models.yaml")]
    dry = run_tarn(tmp_path, *argv, "--dry-run", "--nodes", "n1")
    assert dry.returncode == 0, dry.stderr
    plan = plan_from_env(json.loads(dry.stdout)["master"]["env"]["TARN_AM_MODEL_PLAN"])
    assert sorted(plan.models) == ["bert", "llm", "resnet"]
