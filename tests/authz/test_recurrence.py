"""Validity recurrences evaluated as Ranger 2.6's RangerValidityScheduleEvaluator does (its Java
engine agrees on 16,000 edge cases: test_differential_recurrences.py); pure, no servers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tarn_authz.ranger import DecisionCache, UnsupportedPolicyFeature
from tests.authz.ranger_cases import ask, engine, item, policy, request

ALICE = [item(["alice"])]
MONDAY = datetime(2026, 6, 1, tzinfo=timezone.utc)  # 1 June 2026 is a Monday


def at(day: datetime, hh: int, mm: int = 0, ss: int = 0, ms: int = 0) -> datetime:
    return day + timedelta(hours=hh, minutes=mm, seconds=ss, milliseconds=ms)


def scheduled(*recurrences: dict, **schedule):
    return engine(policy(1, ["*"], allow=ALICE, schedules=[dict(schedule, recurrences=list(recurrences))]))


def every(interval: dict, **fields) -> dict:
    return {"schedule": fields, "interval": interval}


def allowed(eng, moment: datetime) -> bool:
    return ask(eng, "m", "infer", "alice", now=moment).allowed


def test_daily_window_includes_both_ends_to_the_millisecond():
    eng = scheduled(every({"hours": 1}, minute="0", hour="9", dayOfMonth="*", dayOfWeek="*"))
    assert [allowed(eng, at(MONDAY, *t)) for t in [(8, 59, 59, 999), (9, 0), (9, 30), (10, 0), (10, 0, 0, 1)]] \
        == [False, True, True, True, False]


def test_weekdays_only():
    eng = scheduled(every({"hours": 8}, minute="0", hour="9", dayOfWeek="2-6"))  # Monday..Friday, 1 = Sunday
    assert allowed(eng, at(MONDAY, 12)) is True
    assert allowed(eng, at(MONDAY - timedelta(days=1), 12)) is False  # Sunday
    assert allowed(eng, at(MONDAY + timedelta(days=4), 16, 59)) is True  # Friday
    assert allowed(eng, at(MONDAY + timedelta(days=5), 12)) is False  # Saturday


def test_month_and_year_fields():
    eng = scheduled(every({"days": 1}, minute="0", hour="0", dayOfMonth="*", month="6", year="2026"))
    assert allowed(eng, at(MONDAY, 12)) is True
    assert allowed(eng, at(MONDAY + timedelta(days=30), 12)) is False  # 1 July
    assert allowed(eng, at(MONDAY.replace(year=2027), 12)) is False


def test_window_past_midnight_needs_the_day_of_week_field_alone():
    # Ranger moves only the day-of-week candidate back when the hour wraps, and takes the later candidate:
    # with both day fields "*", 01:00 is not covered by the window that opened at 22:00 the day before
    both = scheduled(every({"hours": 4}, minute="0", hour="22", dayOfMonth="*", dayOfWeek="*"))
    week_only = scheduled(every({"hours": 4}, minute="0", hour="22", dayOfWeek="*"))
    assert allowed(both, at(MONDAY, 23)) is True
    assert allowed(both, at(MONDAY, 25)) is False
    assert allowed(week_only, at(MONDAY, 25)) is True


def test_recurrence_without_a_day_field_never_applies():
    assert allowed(scheduled(every({"hours": 23}, minute="*", hour="*")), at(MONDAY, 12)) is False


def test_recurrence_without_an_interval_always_applies():
    assert allowed(scheduled({"schedule": {"hour": "3", "dayOfMonth": "1"}}), at(MONDAY, 12)) is True


def test_any_recurrence_of_a_schedule_is_enough():
    eng = scheduled(every({"hours": 1}, minute="0", hour="9", dayOfMonth="*"),
                    every({"hours": 1}, minute="0", hour="18", dayOfMonth="*"))
    assert [allowed(eng, at(MONDAY, h, 30)) for h in (9, 12, 18)] == [True, False, True]


def test_recurrence_holds_only_within_the_schedule_bounds():
    eng = scheduled(every({"hours": 1}, minute="0", hour="9", dayOfMonth="*"),
                    startTime="2026/06/02 00:00:00", endTime="2026/06/30 00:00:00")
    assert allowed(eng, at(MONDAY, 9, 30)) is False
    assert allowed(eng, at(MONDAY + timedelta(days=1), 9, 30)) is True


def test_fields_are_read_in_the_plugin_zone_utc_not_the_schedule_zone():
    eng = scheduled(every({"hours": 1}, minute="0", hour="9", dayOfMonth="*"), timeZone="Asia/Tokyo")
    assert allowed(eng, at(MONDAY, 9, 30)) is True
    assert allowed(eng, at(MONDAY, 0, 30)) is False  # 09:30 in Tokyo


def test_cached_decisions_follow_the_recurrence_minute_by_minute():
    cache = DecisionCache(scheduled(every({"minutes": 1}, minute="0,2", hour="*", dayOfMonth="*")))
    req = request("m", "infer", "alice")
    assert [cache.evaluate_at(req, int(at(MONDAY, 9, m, s).timestamp() * 1000)).allowed
            for m, s in [(0, 30), (1, 0), (1, 30), (2, 0)]] == [True, True, False, True]


@pytest.mark.parametrize("recurrence, problem", [
    (every({"minutes": 5}, minute="x", dayOfMonth="*"), "minute: 'x' is not a number"),
    (every({"minutes": 5}, minute="0, 5", dayOfMonth="*"), "minute: ' 5' is not a number"),
    (every({"minutes": 5}, dayOfMonth="32"), "dayOfMonth: '32' matches no day"),
    ({"interval": {"minutes": 5}}, "a recurrence with an interval and no schedule"),
])
def test_recurrences_ranger_cannot_evaluate_are_refused(recurrence, problem):
    # Ranger's engine fails to build on a bad number or a missing schedule, and its day search never ends on a
    # day of month that matches no day
    with pytest.raises(UnsupportedPolicyFeature, match=problem):
        scheduled(recurrence)
