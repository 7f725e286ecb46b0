"""authz's Prometheus metrics, on a registry of the app's own.

Counters and the latency histogram are updated on the request path; what describes the
loaded policies (versions, counts, loaded or not, age, degraded or failing closed) is read on
every scrape by `PolicyCollector` from a callable handing it the served states, so it can never
be stale."""
from __future__ import annotations

import time
from typing import Callable, Dict, Iterable, Mapping, Optional, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .freshness import Freshness, stale_reason
from .sources import PolicyBundle

LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class LoadedPolicies(Protocol):
    """What the collector reads of one served Ranger service."""

    @property
    def loaded(self) -> bool: ...

    @property
    def policy_count(self) -> int: ...

    @property
    def bundle(self) -> Optional[PolicyBundle]: ...

    @property
    def freshness(self) -> Freshness: ...


class PolicyCollector(Collector):
    """The loaded policies of every served service, by service name, read on every scrape."""

    def __init__(self, services: Callable[[], Mapping[str, LoadedPolicies]], max_policy_age_s: float = 0.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._services = services
        self._max_age_s = max_policy_age_s
        self._clock = clock

    def collect(self) -> Iterable[GaugeMetricFamily]:
        loaded = GaugeMetricFamily("tarn_authz_policies_loaded", "1 when the service has policies loaded, "
                                   "0 when it denies everything", labels=["service"])
        count = GaugeMetricFamily("tarn_authz_policies", "Enabled access policies in the loaded engine",
                                  labels=["service"])
        versions = {kind: GaugeMetricFamily(f"tarn_authz_{kind}_version", f"Loaded Ranger {kind} version "
                                            f"(-1: none)", labels=["service", "origin"])
                    for kind in ("policy", "role", "user_store")}
        age = GaugeMetricFamily("tarn_authz_policy_age_seconds", "Seconds since the source last confirmed the "
                                "policies in force current (grows while refreshes fail or are refused)",
                                labels=["service"])
        degraded = GaugeMetricFamily("tarn_authz_policies_degraded", "1 when the latest refresh failed or was "
                                     "refused and older policies decide", labels=["service"])
        stale = GaugeMetricFamily("tarn_authz_policies_stale", "1 when the policies in force are older than "
                                  "max_policy_age_s and every decision is denied", labels=["service"])
        now = self._clock()
        for name, state in list(self._services().items()):
            loaded.add_metric([name], 1.0 if state.loaded else 0.0)
            count.add_metric([name], float(state.policy_count))
            freshness = state.freshness
            seconds = freshness.age_s(now)
            if seconds is not None:
                age.add_metric([name], seconds)
            degraded.add_metric([name], 1.0 if freshness.degraded else 0.0)
            stale.add_metric([name], 1.0 if state.loaded and stale_reason(freshness, now, self._max_age_s) else 0.0)
            bundle = state.bundle
            if bundle is not None:
                versions["policy"].add_metric([name, bundle.origin], float(bundle.policy_version))
                versions["role"].add_metric([name, bundle.origin], float(bundle.role_version))
                versions["user_store"].add_metric([name, bundle.origin], float(bundle.user_store_version))
        yield loaded
        yield count
        yield age
        yield degraded
        yield stale
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
        self.refusals = Counter("tarn_authz_policy_refusals_total", "Refreshes that refused the policy set they got "
                                "(it cannot be evaluated: an unsupported feature, malformed); the last good "
                                "policies stay in force",
                                ["service"], registry=self.registry)
        self.refresh_seconds = Histogram("tarn_authz_refresh_seconds", "Duration of one service's policy refresh",
                                         registry=self.registry)
        self.records_errors = Counter("tarn_authz_deployment_records_errors_total",
                                      "Failed reads of the deployment records", registry=self.registry)
        self.audit_events = Counter("tarn_authz_audit_events_total", "Audit events by destination and outcome",
                                    ["destination", "outcome"], registry=self.registry)
        self.spoa_connections = Gauge("tarn_authz_spoa_connections", "HAProxy connections open to the SPOE agent",
                                      registry=self.registry)
        self.spoa_disconnects = Counter("tarn_authz_spoa_disconnects_total", "SPOE agent connections ended, by "
                                        "reason (the SPOP status sent, or closed by haproxy)", ["reason"],
                                        registry=self.registry)
        self._decision_children: Dict[tuple, object] = {}

    def decided(self, service: str, allowed: bool, seconds: float) -> None:
        key = (service, allowed)
        child = self._decision_children.get(key)
        if child is None:  # labels() costs a lock and a lookup: keep the child
            child = self._decision_children[key] = self.decisions.labels(service, "allowed" if allowed else "denied")
        child.inc()
        self.latency.observe(seconds)
