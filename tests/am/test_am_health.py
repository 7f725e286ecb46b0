"""What /healthz reports (am_health.py), pure: the bus, the YARN connection, the reconcile age."""
from __future__ import annotations

from tarn_shared.consumer import ConsumerHealth

from tarn_am.am_health import MIN_STALE_S, bus_check, health_checks, healthy, phase_check, stale_after_s
from tarn_am.bus_health import BusHealth

NOW = 1000.0


def test_a_healthy_bus_is_ok_and_every_way_of_breaking_says_how():
    fine = [ConsumerHealth(True, 900.0, NOW - 0.5), ConsumerHealth(True, 900.0, NOW - 0.2)]
    ok = bus_check(BusHealth(True, 900.0), fine, NOW)
    assert ok.ok and ok.age_s == 0.5
    assert bus_check(BusHealth(False), [], NOW).detail.endswith("not running")
    assert "never reached Redis" in bus_check(BusHealth(False), [ConsumerHealth()], NOW).detail
    behind = [ConsumerHealth(False, None, NOW, behind=True)]
    assert "behind" in bus_check(BusHealth(False), behind, NOW).detail
    cut = bus_check(BusHealth(False), [ConsumerHealth(False, None, NOW - 42)], NOW)
    assert not cut.ok and "cut off from Redis (oldest good read 42 s ago)" in cut.detail


def test_a_phase_is_broken_when_it_never_passed_or_not_for_ten_rounds():
    assert stale_after_s(1.0) == MIN_STALE_S and stale_after_s(3.0) == 30.0
    assert phase_check("x", NOW - 14, None, NOW, 15).ok
    stale = phase_check("reconcile decision", NOW - 16, None, NOW, 15)
    assert not stale.ok and stale.detail == "no reconcile decision for 16 s (the control loop is stuck)"
    failing = phase_check("answer from skein", NOW - 60, "skein application master unreachable", NOW, 15)
    assert not failing.ok and failing.detail.endswith(": skein application master unreachable")
    assert not phase_check("x", None, None, NOW, 15).ok


def test_any_one_broken_check_makes_the_whole_unhealthy():
    bus = bus_check(BusHealth(True, 900.0), [ConsumerHealth(True, 900.0, NOW)], NOW)
    fresh = {"observe": NOW - 1, "decide": NOW - 1}
    assert healthy(health_checks(NOW, bus, fresh, {}, 1.0))
    checks = health_checks(NOW, bus, {"observe": NOW - 100, "decide": NOW - 1}, {"observe": "refused"}, 1.0)
    assert not healthy(checks) and not checks["yarn"].ok and checks["reconcile"].ok
    assert not healthy(health_checks(NOW, bus_check(BusHealth(False), [], NOW), fresh, {}, 1.0))
