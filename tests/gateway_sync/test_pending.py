"""What the loops are handed next: changed addresses, draining ones on a quiet poll, the
reasons for a full reconcile, and the changes that propagated."""
import pytest

from tarn_gateway_sync.pending import PendingWork

pytestmark = pytest.mark.anyio


async def test_changes_are_handed_over_once_and_per_deployment():
    work = PendingWork()
    work.changed("a", {"h:1"}, ts=1.0)
    work.changed("a", {"h:2"}, ts=2.0)
    work.changed("b", {"h:3"}, ts=3.0)
    assert await work.next_changes(poll_s=1.0) == {"a": {"h:1", "h:2"}, "b": {"h:3"}}
    assert await work.next_changes(poll_s=0.01) == {}


async def test_a_quiet_poll_looks_at_the_draining_servers_again_until_none_is_left():
    work = PendingWork()
    work.watch_draining("a", {"h:1"})
    assert await work.next_changes(poll_s=0.01) == {"a": {"h:1"}}
    work.watch_draining("a", set())
    assert await work.next_changes(poll_s=0.01) == {}


async def test_a_reconcile_says_what_asked_for_it():
    work = PendingWork()
    work.request_reconcile("elected")
    work.request_reconcile("zk_session")
    assert await work.next_reconcile(interval_s=1.0) == {"elected", "zk_session"}
    assert await work.next_reconcile(interval_s=0.01) == {"periodic"}


def test_settled_changes_keep_the_first_event_time_and_only_those_in_scope():
    work = PendingWork()
    work.changed("a", {"h:1", "h:2"}, ts=1.0)
    work.changed("a", {"h:1"}, ts=5.0)
    assert work.settled("a", {"h:1"}) == {"h:1": 1.0}
    assert work.settled("a", None) == {"h:2": 1.0}
    assert work.settled("a", None) == {}
