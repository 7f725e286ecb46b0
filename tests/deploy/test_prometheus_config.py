"""deploy/prometheus: the rendered scrape configuration and the recording rules pass Debian's
promtool (config, rules, and the rules' own unit tests), the Grafana copy scrapes the same
jobs, and the dashboard's queries are complete once Grafana's variables are filled in."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from tests.deploy.support import ROOT
from tests.support.prometheus import dashboard_queries, load_render

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "tarn-rules.yml"
RULES_TEST = PROMETHEUS / "tarn-rules.test.yml"
GRAFANA_SCRAPE = ROOT / "deploy" / "grafana" / "prometheus-scrape.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tarn-dashboard.json"
TARN_JOBS = ("tarn-am", "tarn-node-agent", "triton")


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    assert shutil.which("promtool"), "promtool is not installed: deploy/local/install-deps installs prometheus"
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    token = tmp_path / "tarn-am.token"
    token.write_text("a-token\n")
    config = tmp_path / "prometheus.yml"
    config.write_text(load_render().render("http://am-host:8888", token))
    return config


def test_the_rendered_configuration_passes_promtool_with_its_token_and_rules_files(rendered):
    done = promtool("check", "config", str(rendered))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout


def test_the_recording_rules_pass_promtool_and_their_unit_tests():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", RULES_TEST.name, cwd=PROMETHEUS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_wrong_expectation_fails_the_rules_unit_tests(tmp_path):
    """The unit tests can fail: the same file with one expected value changed does."""
    shutil.copy(RULES, tmp_path / RULES.name)
    text = RULES_TEST.read_text()
    assert "value: 0.0035" in text
    (tmp_path / RULES_TEST.name).write_text(text.replace("value: 0.0035", "value: 0.003"))
    done = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert done.returncode != 0 and "got:" in done.stdout + done.stderr


def test_every_recording_rule_and_alert_has_a_unit_test():
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    alerts = {r["alert"] for r in rules if "alert" in r}
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    tested = {e["expr"].split("{")[0] for t in tests for e in t.get("promql_expr_test", [])}
    fired = {a["alertname"] for t in tests for a in t.get("alert_rule_test", []) if a["exp_alerts"]}
    assert recorded and recorded <= tested, sorted(recorded - tested)
    assert alerts and alerts <= fired, sorted(alerts - fired)


def _tarn_jobs(config: dict) -> Dict[str, dict]:
    jobs = {}
    for job in config["scrape_configs"]:
        if job["job_name"] in TARN_JOBS:
            urls = [sd["url"].split("/api/", 1)[1] for sd in job["http_sd_configs"]]
            jobs[job["job_name"]] = {"honor_labels": job.get("honor_labels", False), "sd": urls,
                                     "scrape_auth": "authorization" in job,
                                     "sd_auth": all("authorization" in sd for sd in job["http_sd_configs"])}
    return jobs


def test_the_grafana_scrape_file_scrapes_the_same_jobs_as_the_template(rendered):
    template_jobs = _tarn_jobs(yaml.safe_load(rendered.read_text()))
    assert _tarn_jobs(yaml.safe_load(GRAFANA_SCRAPE.read_text())) == template_jobs
    assert template_jobs == {
        "tarn-am": {"honor_labels": True, "sd": ["prometheus/targets?role=am"], "scrape_auth": True, "sd_auth": True},
        "tarn-node-agent": {"honor_labels": False, "sd": ["prometheus/targets?role=node-agent"],
                            "scrape_auth": False, "sd_auth": True},
        "triton": {"honor_labels": False, "sd": ["prometheus/targets?role=triton"], "scrape_auth": False,
                   "sd_auth": True},
    }


@pytest.mark.parametrize("kwargs,message", [
    ({"am_url": "am-host:8888"}, "am_url must be http(s)://host:port"),
    ({"am_url": "http://am-host:8888/dashboard"}, "am_url must be http(s)://host:port"),
    ({"scrape_interval": "fast"}, "scrape_interval must be a Prometheus duration"),
    ({"token_file": Path("relative.token")}, "token_file must be an absolute path"),
])
def test_render_refuses_what_prometheus_would_refuse_in_one_line(kwargs, message):
    args = {"am_url": "http://am-host:8888", "token_file": Path("/etc/prometheus/tarn-am.token"), **kwargs}
    with pytest.raises(ValueError) as error:
        load_render().render(**args)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_render_as_a_script_writes_the_configuration_or_one_error_line(tmp_path):
    script = str(PROMETHEUS / "render.py")
    ok = subprocess.run(["python3", script, "--am-url", "http://am:1", "--token-file", str(tmp_path / "t")],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and "role=triton" in ok.stdout
    bad = subprocess.run(["python3", script, "--am-url", "am:1", "--token-file", "t"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("render: am_url")


def test_every_dashboard_query_is_complete_once_the_variables_are_filled_in():
    queries: List = dashboard_queries(json.loads(DASHBOARD.read_text()), {"deployment": "demo"})
    assert len(queries) >= 15
    assert all("$" not in q and "[[" not in q for _, q in queries), queries
    assert ("variable 'deployment'", "count by (deployment) (tarn_target_containers)") in queries
    with pytest.raises(ValueError, match=r"no value for the dashboard variable \$deployment"):
        dashboard_queries(json.loads(DASHBOARD.read_text()), {})
