"""docs/: the configuration reference is what the generator writes from the settings
classes today, and the operator docs name only variables, metrics and entry points that exist."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.deploy.support import ROOT, SERVICES, console_scripts, env_names
from tests.support.scripts import load_script

DOCS = ROOT / "docs"
# Variables the docs may name that are not settings fields, and whose they are.
NOT_SETTINGS = {
    "TARN_TOKEN", "TARN_ADMIN_TOKEN",  # the tarn CLI's fallbacks for --token / --admin-token
    "TARN_AUTHZ_KEYTAB",  # read by tarn-authz.service's ExecStartPre (kinit), not by tarn-authz
    "TARN_SECRETS_DIR", "TARN_POLICY_DIR",  # docker-compose.yml interpolation
    "TARN_HDFS_DELEGATION_TOKENS",  # tarn-am's fresh tokens in a new container's environment (node-agent tokens.py)
}
METRIC_SOURCES = ["services/am/tarn_am/fleet_metrics.py", "services/gateway-sync/tarn_gateway_sync/sync_metrics.py",
                  "services/authz/tarn_authz/decision_metrics.py", "services/node-agent/tarn_node_agent/agent_metrics.py"]


def _generator():
    return load_script("docs/gen_config_reference.py")


def test_configuration_reference_is_up_to_date():
    generated = _generator().render()
    committed = (DOCS / "configuration.md").read_text()
    assert committed == generated, "docs/configuration.md is stale: run .venv/bin/python docs/gen_config_reference.py"


def test_configuration_reference_lists_every_variable_of_every_service():
    text = (DOCS / "configuration.md").read_text()
    for service in SERVICES.values():
        missing = [name for name in env_names(service.settings_class()) if f"`{name}`" not in text]
        assert not missing, f"{service.name}: {missing}"


def test_generator_check_mode_detects_a_stale_file(tmp_path, monkeypatch):
    generator = _generator()
    monkeypatch.setattr(generator, "OUT", tmp_path / "configuration.md")
    (tmp_path / "configuration.md").write_text("old\n")
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0 and generator.main(["--check"]) == 0


def test_generator_runs_as_a_script():
    done = subprocess.run([sys.executable, str(DOCS / "gen_config_reference.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def _operator_docs() -> str:
    return "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")) if p.name != "configuration.md")


def test_docs_name_only_real_variables():
    known = set().union(*(env_names(s.settings_class()) for s in SERVICES.values())) | NOT_SETTINGS
    named = set(re.findall(r"\b((?:TARN|RANGER)_[A-Z0-9_]*[A-Z0-9])\b", _operator_docs()))
    assert not named - known, sorted(named - known)


def test_docs_name_only_metrics_the_services_export():
    patterns = []
    for source in METRIC_SOURCES:
        for literal in re.findall(r'f?"(tarn_[a-z0-9_{}]+)"', (ROOT / source).read_text()):
            patterns.append(re.compile(re.sub(r"\\\{\w+\\\}", r"\\w+", re.escape(literal)) +
                                       r"(_total|_bucket|_sum|_count)?"))
    named = set(re.findall(r"\b(tarn_[a-z0-9_]+)\b", _operator_docs()))
    not_metrics = {"tarn_am", "tarn_authz", "tarn_gateway_sync", "tarn_node_agent", "tarn_shared",
                   "tarn_users", "tarn_authz_gateway_token",
                   "tarn_authz_grpc", "tarn_grpc_model",  # the gRPC Lua file and its txn variable
                   "tarn_cold_start"}  # the cold-start Lua file
    unknown = sorted(n for n in named - not_metrics
                     if not n.endswith("_") and not any(p.fullmatch(n) for p in patterns))  # "tarn_x_*" is a family
    assert not unknown, unknown


def test_commands_in_the_docs_code_blocks_are_real_entry_points():
    scripts = set().union(*(console_scripts(s) for s in SERVICES))
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", _operator_docs(), flags=re.S)
    commands = set()
    for block in blocks:
        for line in block.splitlines():
            words = [w for w in line.split() if "=" not in w.split("/")[0]]  # skip VAR=value prefixes
            if words and words[0].startswith("tarn"):
                commands.add(words[0])
    assert commands, "the docs show no tarn command"
    assert commands <= scripts, sorted(commands - scripts)
