"""Validity recurrences (RangerValidityScheduleEvaluator.RangerRecurrenceEvaluator), as Ranger 2.6 computes them.

A recurrence applies at an instant when the instant lies in [start, start + interval], where start
is "the closest past epoch" Ranger derives field by field (minute, hour, then day of month and day
of week, then month and year), each walking back from the instant's value to the nearest value its
schedule allows and borrowing from the next field when it wraps. The walk has Ranger's quirks, kept
because decisions must equal Ranger's: a borrowed hour moves the day-of-week candidate to the day
before but not the day-of-month one (so with both fields set, a window that started yesterday
evening does not cover this morning); a blank minute or hour stays at the instant's value; a
recurrence with neither day field never applies; of the two day candidates the later one wins.

Fields are read in the plugin JVM's default time zone, not the schedule's: tarn-authz behaves as a
plugin whose JVM runs in UTC (as validity.py does for the schedule bounds)."""
from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from typing import NamedTuple

from .models import RangerValidityRecurrence, UnsupportedPolicyFeature

WILDCARD = "*"
_JAVA_INT = re.compile(r"^[+-]?[0-9]+$")
_INT_MAX = 2 ** 31 - 1


class _Field(NamedTuple):
    name: str
    attr: str  # of RangerRecurrenceSchedule
    minimum: int
    maximum: int


MINUTE = _Field("minute", "minute", 0, 59)
HOUR = _Field("hour", "hour", 0, 23)
DAY_OF_MONTH = _Field("dayOfMonth", "day_of_month", 1, 31)
DAY_OF_WEEK = _Field("dayOfWeek", "day_of_week", 1, 7)  # Sunday = 1, as java.util.Calendar
MONTH = _Field("month", "month", 0, 11)  # written 1-12 in a schedule, held 0-11 as java.util.Calendar
YEAR = _Field("year", "year", 2017, 2100)
FIELDS = (MINUTE, HOUR, DAY_OF_MONTH, DAY_OF_WEEK, MONTH, YEAR)
_ALWAYS = ((-_INT_MAX - 1, _INT_MAX),)


class _NoMatch(Exception):
    """No value of a field matches its schedule within one full turn (Ranger throws, and the recurrence does not apply)."""


class _Value(NamedTuple):
    value: int
    borrow: bool


def _java_int(text: str, where: str) -> int:
    if not _JAVA_INT.match(text) or not -_INT_MAX - 1 <= int(text) <= _INT_MAX:
        # Ranger's Integer.parseInt throws and the whole policy engine fails to build
        raise UnsupportedPolicyFeature(f"{where}: {text!r} is not a number")
    return int(text)


def parse_field(spec: str | None, field: _Field, where: str) -> tuple[tuple[int, int], ...]:
    """A field's comma-separated values and ranges as (low, high) pairs; empty when blank; _ALWAYS for '*'."""
    if spec is None or not spec.strip():
        return ()
    shift = 1 if field is MONTH else 0
    out: list[tuple[int, int]] = []
    for part in _java_split(spec, ","):
        bounds = _java_split(part, "-")
        if not bounds:
            raise UnsupportedPolicyFeature(f"{where}: {part!r} is not a value or a range")
        if WILDCARD in bounds[:2]:
            return _ALWAYS
        low = _java_int(bounds[0], where) - shift
        high = _java_int(bounds[1], where) - shift if len(bounds) > 1 else low  # a third bound is ignored
        out.append((low, high))
    return tuple(out)


def _java_split(text: str, separator: str) -> list[str]:
    """String.split with a literal separator: the text itself when it has none, else trailing empty strings dropped."""
    parts = text.split(separator)
    if len(parts) == 1:
        return parts
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _past(field: _Field, allowed: tuple, value: int, borrow_in: bool, maximum: int | None = None) -> _Value:
    """Walk back from `value` (one less when borrowing) to the nearest allowed value; wrap to `maximum`."""
    top = field.maximum if maximum is None else maximum
    value -= 1 if borrow_in else 0
    if not allowed:  # a blank field: the instant's own value, and no borrow even when wrapping
        return _Value(top if value < field.minimum else value, False)
    borrow = False
    for _ in range(field.maximum - field.minimum + 1):
        if value < field.minimum:
            value, borrow = top, True
        if any(low <= value <= high for low, high in allowed):
            return _Value(value, borrow)
        value -= 1
    raise _NoMatch(field.name)


def _days_in(year: int, month0: int) -> int:
    return calendar.monthrange(year + month0 // 12, month0 % 12 + 1)[1]


def _lenient(year: int, month0: int, day: int, hour: int, minute: int) -> datetime:
    """A lenient GregorianCalendar: out-of-range months and days roll into the neighbouring ones."""
    return datetime(year + month0 // 12, month0 % 12 + 1, 1) + timedelta(days=day - 1, hours=hour, minutes=minute)


def _java_day_of_week(moment: datetime) -> int:
    return moment.isoweekday() % 7 + 1


class Recurrence:
    """One compiled recurrence; `applies(now_ms)`."""
    __slots__ = ("interval", "minutes", "hours", "days_of_month", "days_of_week", "months", "years",
                 "has_day_of_month", "has_day_of_week")

    def __init__(self, recurrence: RangerValidityRecurrence | None, where: str):
        interval = recurrence.interval if recurrence is not None else None
        self.interval = timedelta(days=interval.days, hours=interval.hours, minutes=interval.minutes) \
            if interval is not None else timedelta(0)
        if self.interval <= timedelta(0) or recurrence is None:
            self.interval = timedelta(0)  # Ranger: no interval, the recurrence always applies
            return
        schedule = recurrence.schedule
        if schedule is None:
            raise UnsupportedPolicyFeature(f"{where}: a recurrence with an interval and no schedule")
        parsed = {f.name: parse_field(getattr(schedule, f.attr), f, f"{where} {f.name}") for f in FIELDS}
        self.minutes, self.hours = parsed["minute"], parsed["hour"]
        self.days_of_month, self.days_of_week = parsed["dayOfMonth"], parsed["dayOfWeek"]
        self.months, self.years = parsed["month"], parsed["year"]
        self.has_day_of_month = bool(schedule.day_of_month and schedule.day_of_month.strip())
        self.has_day_of_week = bool(schedule.day_of_week and schedule.day_of_week.strip())
        if self.days_of_month and not any(max(low, 1) <= min(high, 31) for low, high in self.days_of_month):
            # Ranger's day-of-month search would loop forever on it
            raise UnsupportedPolicyFeature(f"{where} dayOfMonth: {schedule.day_of_month!r} matches no day")

    def applies(self, now_ms: int) -> bool:
        if self.interval == timedelta(0):
            return True
        now = datetime(1970, 1, 1) + timedelta(milliseconds=now_ms)  # wall time in UTC, naive
        start = self.closest_past_start(now)
        return start is not None and start <= now <= start + self.interval

    def closest_past_start(self, now: datetime) -> datetime | None:
        try:
            minute = _past(MINUTE, self.minutes, now.minute, False)
            hour = _past(HOUR, self.hours, now.hour, minute.borrow)
            by_month_day = self._fill(self._by_day_of_month(now, minute, hour)) if self.has_day_of_month else None
            by_week_day = self._fill(self._by_day_of_week(now, minute, hour)) if self.has_day_of_week else None
        except _NoMatch:
            return None
        if by_month_day is not None and by_week_day is not None:
            return by_month_day if by_month_day > by_week_day else by_week_day
        return by_month_day if by_month_day is not None else by_week_day

    def _by_day_of_month(self, now: datetime, minute: _Value, hour: _Value) -> datetime:
        year, month0, day = now.year, now.month - 1, now.day
        if hour.borrow and day == 1:  # only on the 1st does a borrowed hour move this candidate a day back
            yesterday = now - timedelta(days=1)
            year, month0, day = yesterday.year, yesterday.month - 1, yesterday.day
        while True:
            try:
                found = _past(DAY_OF_MONTH, self.days_of_month, day, False, _days_in(year, month0 - 1))
                break
            except _NoMatch:  # one month back, the day pinned to that month's length
                year, month0 = year + (month0 - 1) // 12, (month0 - 1) % 12
                day = min(day, _days_in(year, month0))
        return _lenient(year, month0 - 1 if found.borrow else month0, found.value, hour.value, minute.value)

    def _by_day_of_week(self, now: datetime, minute: _Value, hour: _Value) -> datetime:
        weekday = _java_day_of_week(now)
        found = _past(DAY_OF_WEEK, self.days_of_week, weekday, hour.borrow)
        back = 1 if hour.borrow else 0
        if not found.borrow:
            back = weekday - found.value
        elif weekday - found.value != back:
            back = DAY_OF_WEEK.maximum + weekday - found.value
        return now.replace(hour=hour.value, minute=minute.value, second=0, microsecond=0) - timedelta(days=back)

    def _fill(self, candidate: datetime) -> datetime:
        month = _past(MONTH, self.months, candidate.month - 1, False)
        year = _past(YEAR, self.years, candidate.year, month.borrow)
        return _lenient(year.value, month.value, candidate.day, candidate.hour, candidate.minute)
