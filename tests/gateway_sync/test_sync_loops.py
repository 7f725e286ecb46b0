"""The control loop's phases without servers: a clock and a sync of our own, so each
phase's error handling, timing and retries are checked as they happen."""
import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from tarn_gateway_sync import pending
from tarn_gateway_sync.pending import PendingWork
from tarn_gateway_sync.sync_loops import ControlLoop
from tarn_gateway_sync.sync_metrics import Clock, ErrorLog, Metrics

pytestmark = pytest.mark.anyio


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedSync:
    """Answers each deployment's sync with its script (True, False or an exception); each
    sync takes ``takes_s`` on the clock."""

    def __init__(self, ticks: Ticks, script: dict, takes_s: float = 0.5) -> None:
        self.ticks, self.script, self.takes_s = ticks, script, takes_s
        self.calls = []
        self.observed = []  # (deployment, whether a phase held the write lock meanwhile)
        self.lock = None

    def deployments(self):
        return list(self.script)

    async def refresh_claims(self, leader):
        pass

    async def clean_released(self):
        return True

    async def observe(self, name):
        self.observed.append((name, self.lock is not None and self.lock.locked()))

    async def sync(self, name, scope):
        self.calls.append((name, scope))
        self.ticks.now += self.takes_s
        outcome = self.script[name]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def parts(monkeypatch):
    monkeypatch.setattr(pending, "RETRY_AFTER_FAILURE_S", 0.01)
    registry = CollectorRegistry()
    metrics, ticks, work = Metrics(registry), Ticks(), PendingWork()
    clock = Clock(monotonic=ticks, wall=lambda: 5000.0)
    leader = {"now": True}

    def loop(script):
        sync = ScriptedSync(ticks, script)
        control = ControlLoop(sync, work, lambda: leader["now"], metrics, ErrorLog(metrics.errors, clock),
                              reconcile_interval_s=30.0, clock=clock)
        return control, sync

    return loop, registry, work, leader


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_bug_in_one_deployment_fails_the_reconcile_but_not_the_others(parts):
    loop, registry, work, _ = parts
    control, sync = loop({"a": RuntimeError("bug"), "b": True})
    await control.reconcile({"elected"})
    assert [name for name, _ in sync.calls] == ["a", "b"]
    assert control.last_reconcile == {"at": 5000.0, "triggers": ["elected"], "ok": False, "duration_s": 1.0,
                                      "deployments": 2}
    assert sample(registry, "tarn_gateway_sync_errors_total", kind="internal") == 1
    assert sample(registry, "tarn_gateway_sync_phase_seconds_sum", phase="reconcile") == 1.0
    assert sample(registry, "tarn_gateway_sync_reconciles_total", trigger="elected") == 1
    assert await work.next_reconcile(interval_s=5.0) == {"retry"}


async def test_a_clean_reconcile_asks_for_no_retry(parts):
    loop, _, work, _ = parts
    control, _ = loop({"a": True})
    await control.reconcile({"periodic"})
    assert control.last_reconcile["ok"] is True
    assert await work.next_reconcile(interval_s=0.05) == {"periodic"}


async def test_apply_syncs_only_served_deployments_and_survives_a_bug(parts):
    loop, registry, work, _ = parts
    control, sync = loop({"a": RuntimeError("bug"), "b": False})
    await control.apply({"a": {"h:1"}, "b": {"h:2"}, "unknown": {"h:3"}, "c": set()})
    assert sync.calls == [("a", {"h:1"}), ("b", {"h:2"})]
    assert sample(registry, "tarn_gateway_sync_errors_total", kind="internal") == 1
    assert sample(registry, "tarn_gateway_sync_phase_seconds_sum", phase="apply") == 1.0
    assert await work.next_reconcile(interval_s=5.0) == {"retry"}


async def test_a_standby_writes_nothing_and_times_no_propagation(parts):
    loop, registry, work, leader = parts
    leader["now"] = False
    control, sync = loop({"a": True})
    work.changed("a", {"h:1"}, ts=1.0)
    await control.apply(await work.next_changes(poll_s=0.01))
    await control.reconcile({"periodic"})
    assert sync.calls == [] and control.last_reconcile is None
    assert work.settled("a", None) == {}
    assert sample(registry, "tarn_gateway_sync_phase_seconds_count", phase="apply") == 0


async def test_a_reconcile_reads_each_deployment_before_it_takes_the_write_lock(parts):
    loop, _, _, _ = parts
    control, sync = loop({"a": True, "b": True})
    sync.lock = control._write_lock
    await control.reconcile({"periodic"})
    assert sync.observed == [("a", False), ("b", False)] and [n for n, _ in sync.calls] == ["a", "b"]


async def test_full_reconciles_are_rate_limited_however_often_they_are_asked_for():
    work, metrics = PendingWork(), Metrics(CollectorRegistry())
    sync = ScriptedSync(Ticks(), {"a": True}, takes_s=0.0)
    control = ControlLoop(sync, work, lambda: True, metrics, ErrorLog(metrics.errors, Clock()),
                          reconcile_interval_s=30.0, reconcile_min_gap_s=0.3)
    stop = asyncio.Event()
    running = asyncio.create_task(control.run_reconcile(stop))
    for _ in range(40):  # asked for every 25 ms for a second
        work.request_reconcile("retry")
        await asyncio.sleep(0.025)
    stop.set()
    await running
    assert 2 <= len(sync.calls) <= 5  # about one per 0.3 s, not forty


def test_an_error_is_counted_every_time_and_logged_once_per_window(caplog):
    metrics, ticks = Metrics(CollectorRegistry()), Ticks()
    errors = ErrorLog(metrics.errors, Clock(monotonic=ticks), every_s=30.0)
    with caplog.at_level(logging.ERROR):
        for step_s in (0.0, 1.0, 28.0, 1.0):  # at 0, 1, 29 and 30 s
            ticks.now += step_s
            errors("redis", OSError("down"))
    assert metrics.errors.labels("redis")._value.get() == 4
    assert [r.getMessage() for r in caplog.records] == ["redis: down", "redis: down"]
