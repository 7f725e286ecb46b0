"""authz's Prometheus metrics, on a registry of the app's own.

Counters and the latency histogram are updated on the request path; what describes the
loaded policies (versions, counts, loaded or not) is read from the service states on every
scrape by `PolicyCollector`, so it can never be stale."""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .registry import ServiceState

LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class PolicyCollector(Collector):
    def __init__(self) -> None:
        self.states: Dict[str, "ServiceState"] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        loaded = GaugeMetricFamily("tarn_authz_policies_loaded", "1 when the service has policies loaded, "
                                   "0 when it denies everything", labels=["service"])
        count = GaugeMetricFamily("tarn_authz_policies", "Enabled access policies in the loaded engine",
                                  labels=["service"])
        versions = {kind: GaugeMetricFamily(f"tarn_authz_{kind}_version", f"Loaded Ranger {kind} version "
                                            f"(-1: none)", labels=["service", "origin"])
                    for kind in ("policy", "role", "user_store")}
        for name, state in list(self.states.items()):
            loaded.add_metric([name], 1.0 if state.loaded else 0.0)
            count.add_metric([name], float(state.engine.policy_count if state.engine else 0))
            bundle = state.bundle
            if bundle is not None:
                versions["policy"].add_metric([name, bundle.origin], float(bundle.policy_version))
                versions["role"].add_metric([name, bundle.origin], float(bundle.role_version))
                versions["user_store"].add_metric([name, bundle.origin], float(bundle.user_store_version))
        yield loaded
        yield count
        yield from versions.values()


class AuthzMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.decisions = Counter("tarn_authz_decisions_total", "Authorization decisions by result",
                                 ["service", "result"], registry=self.registry)
        self.latency = Histogram("tarn_authz_decision_seconds", "Time to decide one access question",
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.refresh_errors = Counter("tarn_authz_refresh_errors_total", "Failed policy refreshes "
                                      "(the last good policies stay loaded)", ["service"], registry=self.registry)
        self.refresh_seconds = Histogram("tarn_authz_refresh_seconds", "Duration of one service's policy refresh",
                                         registry=self.registry)
        self.records_errors = Counter("tarn_authz_deployment_records_errors_total",
                                      "Failed reads of the deployment records", registry=self.registry)
        self.audit_events = Counter("tarn_authz_audit_events_total", "Audit events by destination and outcome",
                                    ["destination", "outcome"], registry=self.registry)
        self.policies = PolicyCollector()
        self.registry.register(self.policies)
        self._decision_children: Dict[tuple, object] = {}

    def watch(self, state: "ServiceState") -> None:
        self.policies.states[state.name] = state

    def unwatch(self, state: "ServiceState") -> None:
        self.policies.states.pop(state.name, None)

    def decided(self, service: str, allowed: bool, seconds: float) -> None:
        key = (service, allowed)
        child = self._decision_children.get(key)
        if child is None:  # labels() costs a lock and a lookup: keep the child
            child = self._decision_children[key] = self.decisions.labels(service, "allowed" if allowed else "denied")
        child.inc()
        self.latency.observe(seconds)
