"""The Grafana dashboard queries only what tarn-am exports: every metric name in every
PromQL expression (panels and template variables) is in the AM's /metrics exposition, and
every label the expression filters or groups by is one that metric carries."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from types import SimpleNamespace
from typing import Dict, Iterator, List, Set, Tuple

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tarn_shared import events as ev
from tests.deploy.support import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "tarn-dashboard.json"
SCRAPE_CONFIG = ROOT / "deploy" / "grafana" / "prometheus-scrape.yml"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


def _fake_controller():
    """The read side of tarn-am's controller that the collector uses, with one instance
    reporting GPUs and one whose GPUs could not be read."""
    gpu = ev.GpuSample(index=0, utilization_pct=55.0, memory_used_bytes=2 ** 30, memory_total_bytes=2 ** 34)
    model = ev.ModelSample(name="resnet", request_rate_per_s=3.0, failure_rate_per_s=0.1,
                           queue_time_per_request_us=1500.0, pending_requests=2.0)
    samples = [
        ev.TelemetrySample(deployment="triton", app_id="application_1_0001", instance_id="container_1_0001_01_000002",
                           interval_s=2.0, load=0.7, models=[model], gpus=[gpu]),
        ev.TelemetrySample(deployment="triton", app_id="application_1_0001", instance_id="container_1_0001_01_000003",
                           interval_s=2.0, load=0.4, models=[model], gpus=None, gpu_error="NVMLError"),
    ]
    membership = SimpleNamespace(routable=lambda: {"h1:8000": object()}, members={})
    view = SimpleNamespace(membership=membership, fresh_telemetry=lambda now, max_age_s: samples)
    return SimpleNamespace(
        settings=SimpleNamespace(deployment="triton"), desired=2, running_count=lambda: 2, view=view,
        decision=SimpleNamespace(blocked=SimpleNamespace(count=1)), state=SimpleNamespace(restarts=3),
        stats=SimpleNamespace(phase_seconds={"observe": 0.01, "decide": 0.001}, phase_errors={"act": 1}),
        container_for=lambda instance_id: SimpleNamespace(host="node1"),
        policy=SimpleNamespace(models=None),  # all models everywhere: no per-model series
    )


@pytest.fixture(scope="module")
def exported() -> Dict[str, Set[str]]:
    """Sample name -> label names, from the AM's collector rendered as Prometheus text."""
    from tarn_am.fleet_metrics import FleetCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(_fake_controller(), clock=lambda: 1000.0))
    text = generate_latest(registry).decode()
    series: Dict[str, Set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def _targets(panels: List[dict]) -> Iterator[Tuple[str, str]]:
    for panel in panels:
        yield from _targets(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel["title"], target["expr"]


def _expressions(dashboard: dict) -> List[Tuple[str, str]]:
    found = list(_targets(dashboard["panels"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
            assert match, f"variable {variable['name']}: only label_values(expr, label) is expected"
            found.append((f"variable {variable['name']}", f"{match.group(1)} by ({match.group(2)})"))
    return found


def parse_promql(expr: str) -> Tuple[Set[str], Set[str]]:
    """(metric names, label names used in matchers and by/without/on/ignoring clauses)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals (label values)
    labels: Set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels.update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels.update(part.strip() for part in clause.split(",") if part.strip())
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range selectors and subqueries
    metrics = {name for name, call in re.findall(r"([a-zA-Z_:][\w:]*)\s*(\()?", expr)
               if not call and name.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d\w*", name)}
    return metrics, labels


def test_parse_promql_finds_metrics_and_labels():
    metrics, labels = parse_promql('sum by (deployment, model) (rate(foo_total{a="x{y}", b=~"$v"}[5m])) / bar')
    assert metrics == {"foo_total", "bar"} and labels == {"deployment", "model", "a", "b"}


def test_dashboard_is_valid_grafana_json_with_unique_panel_ids():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = []

    def walk(panels):
        for panel in panels:
            ids.append(panel["id"])
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    assert len(ids) == len(set(ids)) and dashboard["uid"] and dashboard["title"]


def test_every_metric_the_dashboard_queries_is_exported_by_the_am(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = _expressions(dashboard)
    assert expressions
    for where, expr in expressions:
        metrics, labels = parse_promql(expr)
        assert metrics, f"{where}: no metric in {expr!r}"
        for metric in metrics:
            assert metric in exported, f"{where}: {metric} is not exported by tarn-am ({sorted(exported)})"
            unknown = labels - exported[metric] - TARGET_LABELS
            assert not unknown, f"{where}: {metric} has no label(s) {sorted(unknown)}"


def test_dashboard_covers_the_seeds_metrics_and_the_request_and_queue_figures():
    queried = set()
    for _, expr in _expressions(json.loads(DASHBOARD.read_text())):
        queried |= parse_promql(expr)[0]
    assert {"tarn_target_containers", "tarn_running_containers", "tarn_container_load", "tarn_gpu_utilization",
            "tarn_gpu_memory_used", "tarn_request_rate_per_second", "tarn_queue_time_per_request_seconds",
            "tarn_pending_requests"} <= queried


def test_prometheus_scrape_config_is_valid():
    assert shutil.which("promtool"), "promtool is not installed: deploy/local/install-deps installs prometheus"
    done = subprocess.run(["promtool", "check", "config", "--syntax-only", str(SCRAPE_CONFIG)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
