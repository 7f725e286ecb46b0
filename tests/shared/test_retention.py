"""The trim rule, pure: nothing a live consumer group or a restarted consumer needs ever goes."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tarn_shared.membership import stream_id_key
from tarn_shared.retention import (ABANDONED_AFTER_MS, GroupPosition, abandoned, group_needs,
                                   lifecycle_trim_point, trim_point)

NOW_MS = 1_700_000_000_000


def entry(ms: int, seq: int = 0) -> str:
    return f"{ms}-{seq}"


def live(name, last, pending=None, idle_ms=50):
    return GroupPosition(name, last, pending, idle_ms)


def test_the_trim_point_is_the_snapshot_through_when_every_group_is_past_it():
    groups = [live("tarn-am", entry(NOW_MS)), live("gateway-sync.a", entry(NOW_MS - 10))]
    assert lifecycle_trim_point(entry(NOW_MS - 5_000), groups, NOW_MS) == entry(NOW_MS - 5_000)


def test_a_group_behind_the_snapshot_holds_the_stream_at_what_it_has_not_been_delivered():
    groups = [live("tarn-am", entry(NOW_MS)), live("gateway-sync.slow", entry(NOW_MS - 60_000))]
    assert lifecycle_trim_point(entry(NOW_MS - 5_000), groups, NOW_MS) == entry(NOW_MS - 60_000)


def test_a_pending_entry_holds_the_stream_until_it_is_acked():
    groups = [live("tarn-am", entry(NOW_MS), pending=entry(NOW_MS - 90_000, 3))]
    assert lifecycle_trim_point(entry(NOW_MS - 5_000), groups, NOW_MS) == entry(NOW_MS - 90_000, 3)


def test_a_snapshot_that_applied_nothing_lets_nothing_go():
    assert lifecycle_trim_point(None, [live("tarn-am", entry(NOW_MS))], NOW_MS) is None


def test_a_group_that_has_read_nothing_yet_lets_nothing_go():
    assert lifecycle_trim_point(entry(NOW_MS), [live("tarn-am", "0-0")], NOW_MS) is None


def test_a_group_whose_consumers_are_all_long_idle_no_longer_holds_the_stream_back():
    gone = live("gateway-sync.retired", entry(NOW_MS - 3_600_000), pending=entry(NOW_MS - 3_700_000),
                idle_ms=ABANDONED_AFTER_MS + 1)
    assert abandoned(gone, NOW_MS)
    assert lifecycle_trim_point(entry(NOW_MS - 5_000), [gone], NOW_MS) == entry(NOW_MS - 5_000)


def test_a_group_without_consumers_counts_as_live_until_its_last_delivery_is_old():
    fresh = GroupPosition("gateway-sync.b", entry(NOW_MS - 1_000))
    stale = GroupPosition("gateway-sync.c", entry(NOW_MS - ABANDONED_AFTER_MS - 1))
    assert not abandoned(fresh, NOW_MS) and abandoned(stale, NOW_MS)
    assert lifecycle_trim_point(entry(NOW_MS), [fresh, stale], NOW_MS) == entry(NOW_MS - 1_000)


def test_without_a_rebuild_need_the_live_groups_alone_decide_and_no_group_means_no_trim():
    assert trim_point(None, [live("tarn-am", entry(NOW_MS - 7))], NOW_MS) == entry(NOW_MS - 7)
    assert trim_point(None, [], NOW_MS) is None


def test_ids_compare_as_numbers_not_as_text():
    groups = [live("a", "999-0"), live("b", "1000-0")]
    assert trim_point("1000-10", groups, 1_000) == "999-0"
    assert group_needs(live("a", "10-2", pending="10-10")) == "10-2"


# -- properties: a stream of ids, groups somewhere along it, a snapshot somewhere in it --------

ids = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3)), min_size=1, max_size=60, unique=True) \
    .map(lambda pairs: [entry(NOW_MS - 20_000_000 + ms * 1000, seq) for ms, seq in sorted(pairs)])


@st.composite
def scenes(draw):
    stream = draw(ids)
    groups = []
    for n in range(draw(st.integers(0, 4))):
        delivered = draw(st.integers(0, len(stream) - 1))
        pending = draw(st.none() | st.integers(0, delivered))
        idle = draw(st.none() | st.integers(0, 2 * ABANDONED_AFTER_MS))
        groups.append(GroupPosition(f"g{n}", stream[delivered], None if pending is None else stream[pending], idle))
    through = draw(st.none() | st.sampled_from(stream))
    return stream, groups, through


def kept(stream, point):
    return stream if point is None else [i for i in stream if stream_id_key(i) >= stream_id_key(point)]


@given(scenes())
def test_trimming_keeps_every_entry_a_live_group_has_pending_or_undelivered(scene):
    stream, groups, through = scene
    left = kept(stream, lifecycle_trim_point(through, groups, NOW_MS))
    for group in groups:
        if abandoned(group, NOW_MS):
            continue
        floor = stream_id_key(group.oldest_pending_id or group.last_delivered_id)
        assert [i for i in stream if stream_id_key(i) >= floor] == [i for i in left if stream_id_key(i) >= floor]


@given(scenes())
def test_trimming_keeps_the_snapshot_through_and_everything_after_it(scene):
    stream, groups, through = scene
    point = lifecycle_trim_point(through, groups, NOW_MS)
    if through is None:
        assert point is None
        return
    after = [i for i in stream if stream_id_key(i) >= stream_id_key(through)]
    assert kept(stream, point)[-len(after):] == after


@given(scenes())
def test_trimming_goes_as_far_as_the_oldest_need_and_no_shorter(scene):
    stream, groups, through = scene
    point = lifecycle_trim_point(through, groups, NOW_MS)
    needs = [group_needs(g) for g in groups if not abandoned(g, NOW_MS)] + ([through] if through else [])
    if through is None:
        return
    assert point in needs and all(stream_id_key(point) <= stream_id_key(n) for n in needs)
