"""Policy validity schedules (RangerValidityScheduleEvaluator): 'yyyy/MM/dd HH:mm:ss' wall-clock
bounds in the schedule's time zone (GMT when none or unknown) converted as Ranger does, both ends
inclusive; within them, any of the schedule's recurrences (recurrence.py) must apply, when it has some."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .models import RangerValiditySchedule
from .recurrence import Recurrence

_DATE_FORMAT = "%Y/%m/%d %H:%M:%S"
_CUSTOM_ZONE = re.compile(r"^GMT([+-])(\d{1,2}):?(\d{2})?$")


def java_time_zone(name: str | None) -> tzinfo:
    """TimeZone.getTimeZone: an IANA id, 'GMT±hh:mm', or GMT for anything it does not know."""
    if not name or not name.strip():
        return timezone.utc
    custom = _CUSTOM_ZONE.match(name)
    if custom:
        sign = -1 if custom.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(custom.group(2)), minutes=int(custom.group(3) or 0)))
    if name in ("GMT", "UTC"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def _epoch_ms(text: str | None, zone: tzinfo) -> int | None:
    if not text:
        return None
    try:
        wall = datetime.strptime(text.strip(), _DATE_FORMAT)
    except ValueError:
        return None  # Ranger logs the parse error and drops the bound
    # Ranger (getAdjustedTime) reads the wall time as UTC (the plugin JVM's zone) and shifts it by the
    # zone's offset at that UTC instant, not at the wall time: an hour apart just after a DST change.
    as_utc = wall.replace(tzinfo=timezone.utc)
    return (int(as_utc.timestamp()) - int(as_utc.astimezone(zone).utcoffset().total_seconds())) * 1000


class ValidityWindow:
    __slots__ = ("start_ms", "end_ms", "recurrences")

    def __init__(self, schedule: RangerValiditySchedule, where: str = "validity schedule"):
        zone = java_time_zone(schedule.time_zone)
        self.start_ms = _epoch_ms(schedule.start_time, zone)
        self.end_ms = _epoch_ms(schedule.end_time, zone)
        self.recurrences = tuple(Recurrence(r, f"{where} recurrence {i}") for i, r in enumerate(schedule.recurrences))

    @property
    def recurring(self) -> bool:
        """Its answer can change at every minute (and on the minute), not only at its bounds."""
        return bool(self.recurrences)

    def contains(self, now_ms: int) -> bool:
        if not ((self.start_ms is None or now_ms >= self.start_ms) and (self.end_ms is None or now_ms <= self.end_ms)):
            return False
        return not self.recurrences or any(r.applies(now_ms) for r in self.recurrences)

    def boundaries(self) -> list[int]:
        """Instants at which the window's answer can change (for cache partitioning)."""
        out = []
        if self.start_ms is not None:
            out.append(self.start_ms)
        if self.end_ms is not None:
            out.append(self.end_ms + 1)
        return out


def to_epoch_ms(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp() * 1000)
