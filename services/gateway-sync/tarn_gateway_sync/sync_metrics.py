"""What a replica measures: its Prometheus metrics on a registry the caller passes in (a
private one in tests), the error count every part reports to, and the clock they all read."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from tarn_shared.consumer import ConsumerStats

log = logging.getLogger(__name__)
ERROR_LOG_EVERY_S = 30.0
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COLD_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)  # a cold start loads a model: seconds


@dataclass(frozen=True)
class Clock:
    """Injected so tests set the time: ``monotonic`` for durations and deadlines, ``wall``
    to compare with events' timestamps."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.propagation = Histogram(
            "tarn_gateway_sync_propagation_seconds",
            "From a lifecycle event's timestamp to both gateways updated", ["change"],
            buckets=LATENCY_BUCKETS_S, registry=registry)
        self.reconciles = Counter("tarn_gateway_sync_reconciles", "Full reconciles run", ["trigger"],
                                  registry=registry)
        self.phase_seconds = Histogram("tarn_gateway_sync_phase_seconds", "Duration of each loop phase", ["phase"],
                                       buckets=LATENCY_BUCKETS_S, registry=registry)
        self.errors = Counter("tarn_gateway_sync_errors", "Errors by kind", ["kind"], registry=registry)
        self.leader = Gauge("tarn_gateway_sync_leader", "1 while this replica is the leader", registry=registry)
        self.claims_refused = Counter(
            "tarn_gateway_sync_claims_refused", "A deployment refused a backend or ZooKeeper path another owns",
            ["deployment", "place"], registry=registry)
        self.refused = Counter(
            "tarn_gateway_sync_refused", "Records, instances and stored places refused before reaching a gateway "
            "(a name, path or host of a bad shape, or not allowed by the settings), once per version",
            ["what", "reason"], registry=registry)
        self.routed = Gauge("tarn_gateway_sync_routed_instances", "Ready instances to route", ["deployment"],
                            registry=registry)
        self.cold_requests = Counter(
            "tarn_gateway_sync_cold_requests", "Requests HAProxy held for a model with no usable copy (scaled to "
            "zero), as tarn_cold_start.lua reports them: held, then served or expired (503)", ["outcome"],
            registry=registry)
        self.cold_wait = Histogram("tarn_gateway_sync_cold_wait_seconds",
                                   "How long a held request waited until a copy served it", buckets=COLD_BUCKETS_S,
                                   registry=registry)
        self.demands = Counter("tarn_gateway_sync_model_demands", "Cold-start reports that asked tarn-am for a "
                               "copy, by outcome: published, throttled, refused, failed", ["outcome"],
                               registry=registry)

    def watch_consumers(self, consumers: Callable[[], Mapping[str, ConsumerStats]]) -> None:
        self.registry.register(ConsumerCollector(consumers))


class ConsumerCollector(Collector):
    """Reads the stream consumers' own counters on every scrape."""

    def __init__(self, consumers: Callable[[], Mapping[str, ConsumerStats]]) -> None:
        self._consumers = consumers

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily("tarn_gateway_sync_events", "Stream entries by outcome",
                                     labels=["stream", "outcome"])
        for stream, stats in sorted(self._consumers().items()):
            family.add_metric([stream, "handled"], stats.handled)
            family.add_metric([stream, "failed"], stats.failed)
            family.add_metric([stream, "dead_lettered"], stats.dead_lettered)
        yield family


class ErrorLog:
    """Counts every error by kind; logs each distinct one at most once per ``every_s``
    (retries repeat the same failure every second)."""

    def __init__(self, errors: Counter, clock: Clock = Clock(), every_s: float = ERROR_LOG_EVERY_S) -> None:
        self._errors = errors
        self._clock = clock
        self._every_s = every_s
        self._logged: Dict[str, float] = {}

    def __call__(self, kind: str, exc: BaseException, **fields) -> None:
        self._errors.labels(kind).inc()
        message = f"{kind}: {exc}"
        now = self._clock.monotonic()
        if now - self._logged.get(message, -self._every_s) >= self._every_s:
            self._logged[message] = now
            log.error(message, extra={"kind": kind, **fields})
