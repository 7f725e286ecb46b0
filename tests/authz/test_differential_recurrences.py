"""Differential test of validity recurrences: tarn-authz against Apache Ranger's Java engine
(tests/authz/oracle, JVM pinned to UTC) on many instants around the edges recurrences borrow across:
midnight, the 1st of a month after February, the turn of a year, a leap day, and whole minutes (±1 ms).

Each suite is one policy allowing alice whose validity schedule has one or two recurrences drawn
from cron-like field values; every access time is decided by both engines. Mutants that read the
schedule the way a cron user would (a borrowed hour moves the day of month back too; the interval's
end excluded) must disagree with Ranger somewhere, so the cases can tell them apart."""
from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest

from tarn_authz.ranger import recurrence as recurrence_module
from tests.authz.oracle import client as oracle
from tests.authz.ranger_cases import TRITON_SERVICEDEF
from tests.authz.test_differential import RECURRENCE_FIELDS, decide, java_decisions

pytestmark = pytest.mark.integration

SUITES = 400
TIMES_PER_SUITE = 40
ANCHORS = [
    datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc),   # a Monday noon
    datetime(2026, 3, 1, 0, 20, tzinfo=timezone.utc),   # a Sunday, just after February
    datetime(2027, 1, 1, 0, 5, tzinfo=timezone.utc),    # a new year (a Friday)
    datetime(2028, 3, 1, 0, 10, tzinfo=timezone.utc),   # after a leap day
    datetime(2026, 8, 31, 23, 50, tzinfo=timezone.utc),  # the last minutes of a 31-day month
]
EXTRA_FIELD_VALUES = {"minute": ["5,50", "0-59"], "hour": ["1-3", "23,0"], "dayOfMonth": ["30", "1-3,29-31"],
                      "dayOfWeek": ["6-7", "3"], "month": ["1", "2", "8-9"], "year": ["2028", "2026-2028"]}


def _recurrence(rng: random.Random) -> dict:
    schedule = {}
    for name, values in RECURRENCE_FIELDS.items():
        value = rng.choice(values + EXTRA_FIELD_VALUES[name])
        if value or rng.random() < 0.5:
            schedule[name] = value
    interval = {"days": rng.choice([0, 0, 0, 1, 2]), "hours": rng.choice([0, 1, 2, 5, 23]),
                "minutes": rng.choice([0, 1, 10, 30, 59])}
    return {"schedule": schedule, "interval": interval}


def _access_times(rng: random.Random, anchor: datetime) -> list[int]:
    base = int(anchor.timestamp()) * 1000
    out = []
    for _ in range(TIMES_PER_SUITE):
        minutes = rng.choice([rng.randint(-90, 90), rng.randint(-26 * 60, 26 * 60), rng.randint(-8 * 24 * 60, 0)])
        out.append(base + minutes * 60_000 + rng.choice([0, 0, 1, -1, 30_000]))
    return out


def generate(count: int, seed: int = 14) -> list[dict]:
    rng = random.Random(seed)
    suites = []
    for _ in range(count):
        anchor = rng.choice(ANCHORS)
        schedule = {"recurrences": [_recurrence(rng) for _ in range(rng.choice([1, 1, 2]))]}
        policy = {"id": 1, "name": "scheduled", "isEnabled": True, "isAuditEnabled": True, "policyPriority": 0,
                  "resources": {"model": {"values": ["*"], "isExcludes": False}},
                  "policyItems": [{"users": ["alice"], "groups": [], "roles": [],
                                   "accesses": [{"type": "infer", "isAllowed": True}]}],
                  "denyPolicyItems": [], "allowExceptions": [], "denyExceptions": [],
                  "validitySchedules": [schedule]}
        suites.append({"policies": {"serviceName": "triton", "policyVersion": 1, "serviceDef": TRITON_SERVICEDEF,
                                    "policies": [policy]},
                       "requests": [{"resource": {"model": "m"}, "accessType": "infer", "user": "alice",
                                     "userGroups": [], "accessTime": t} for t in _access_times(rng, anchor)]})
    return suites


def _cron_like_day_of_month(self, now, minute, hour):
    if hour.borrow:  # what a cron reader expects: the day of month moves back with a borrowed hour
        now, hour = now - timedelta(days=1), hour._replace(borrow=False)
    return _original_by_day_of_month(self, now, minute, hour)


def _end_excluded(self, now_ms):
    if self.interval == timedelta(0):
        return True
    now = datetime(1970, 1, 1) + timedelta(milliseconds=now_ms)
    start = self.closest_past_start(now)
    return start is not None and start <= now < start + self.interval


_original_by_day_of_month = recurrence_module.Recurrence._by_day_of_month
MUTANTS = {
    "day of month borrowed like cron": lambda: mock.patch.object(
        recurrence_module.Recurrence, "_by_day_of_month", _cron_like_day_of_month),
    "interval end excluded": lambda: mock.patch.object(recurrence_module.Recurrence, "applies", _end_excluded),
}


@pytest.fixture(scope="module")
def cases():
    oracle.build()
    suites = generate(SUITES)
    answers = oracle.evaluate(suites)
    rejected = [a for a in answers if isinstance(a, str)]
    assert not rejected, f"Ranger rejected {len(rejected)} suites, e.g. {rejected[:2]}"
    return suites, [java_decisions(a) for a in answers]


def _disagreements(suites, theirs):
    found = []
    for suite, java in zip(suites, theirs):
        for request, ours, ranger in zip(suite["requests"], decide(suite), java):
            if ours != ranger:
                found.append({"recurrences": suite["policies"]["policies"][0]["validitySchedules"][0]["recurrences"],
                              "accessTime": datetime.fromtimestamp(request["accessTime"] / 1000, timezone.utc)
                              .isoformat(), "ours": ours, "ranger": ranger})
    return found


def test_recurrences_agree_with_rangers_java_engine(cases, capsys):
    suites, theirs = cases
    outcomes = Counter(d[0] for java in theirs for d in java)
    found = _disagreements(suites, theirs)
    with capsys.disabled():
        print(f"\nrecurrences: {sum(outcomes.values())} cases in {len(suites)} suites; Ranger allowed "
              f"{outcomes[True]}, denied {outcomes[False]}; {len(found)} disagreements")
    assert not found, f"{len(found)} disagreements; first: {found[0]}"
    # both answers common: the cases sit on the edges, not all inside or all outside the windows
    assert min(outcomes[True], outcomes[False]) >= sum(outcomes.values()) // 10, outcomes


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_cron_like_readings_of_a_recurrence_are_caught(cases, mutant, capsys):
    suites, theirs = cases
    with MUTANTS[mutant]():
        found = _disagreements(suites, theirs)
    with capsys.disabled():
        print(f"\nrecurrence mutant '{mutant}': {len(found)} disagreements with Ranger")
    assert found, f"the recurrence cases did not catch the mutant '{mutant}'"
