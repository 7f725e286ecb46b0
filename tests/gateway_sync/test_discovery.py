"""Discovery without servers: which deployment records are served, the replay of a
lifecycle stream from its newest snapshot, and what a lifecycle event hands the loops."""
import pytest
from prometheus_client import CollectorRegistry

from tarn_gateway_sync.admission import Allowlist, Gate
from tarn_gateway_sync.discovery import CHANGED, NEW, REMOVED, Discovery, record_change, replay
from tarn_gateway_sync.pending import PendingWork
from tarn_gateway_sync.routing import Fleet
from tarn_gateway_sync.sync_metrics import Metrics
from tarn_shared import events as ev

pytestmark = pytest.mark.anyio
ADMIT_ALL = lambda event: event  # noqa: E731


def gate() -> Gate:
    allowed = Allowlist.of(["triton_backend"], ["zk:2181"], ["/services/triton"])
    return Gate(allowed, "zk:2181", Metrics(CollectorRegistry()).refused)


def record(name="d", **fields):
    return ev.DeploymentRecord(deployment=name, app_id="app", **fields)


def ready(port, seq=1):
    return ev.InstanceReady(deployment="d", app_id="app", instance_id=f"c{port}", seq=seq,
                            endpoints=ev.Endpoints(host="h", http_port=port))


def snapshot(ports, through):
    members = [ev.MemberState(instance_id=f"c{p}", state=ev.InstanceState.READY, seq=1,
                              endpoints=ev.Endpoints(host="h", http_port=p)) for p in ports]
    return ev.MembershipSnapshot(deployment="d", app_id="app", snapshot_seq=1, lifecycle_through=through,
                                 desired_count=len(members), members=members)


class FakeStreams:
    """XRANGE / XREVRANGE over one in-memory stream, ids ``N-0``, as redis-py answers them."""

    def __init__(self, entries):
        self.entries = [(f"{n}-0".encode(), fields) for n, fields in enumerate(entries, 1)]
        self.reads = []  # (direction, min, max) of every page asked for

    def _select(self, low, high, count, reverse):
        def bound(value):
            if value in ("-", "+"):
                return None, True
            return int(value.lstrip("(").split("-")[0]), not value.startswith("(")

        (lo, lo_in), (hi, hi_in) = bound(low), bound(high)

        def inside(entry_id):
            n = int(entry_id.decode().split("-")[0])
            return (lo is None or n > lo or (lo_in and n == lo)) and (hi is None or n < hi or (hi_in and n == hi))

        self.reads.append(("rev" if reverse else "fwd", low, high))
        chosen = [e for e in self.entries if inside(e[0])]
        return (chosen[::-1] if reverse else chosen)[:count]

    async def xrange(self, stream, min="-", max="+", count=None):
        return self._select(min, max, count, reverse=False)

    async def xrevrange(self, stream, max="+", min="-", count=None):
        return self._select(min, max, count, reverse=True)


def test_a_record_outside_the_served_list_is_ignored():
    assert record_change(None, record("other"), only=["d"]) is None
    assert record_change(None, record("d"), only=["d"]) == NEW
    assert record_change(None, record("any"), only=[]) == NEW


def test_a_republished_record_changes_nothing_unless_its_settings_do():
    known = record(haproxy_backend="b1")
    assert record_change(known, record(haproxy_backend="b1"), only=[]) is None  # new event_id and ts only
    assert record_change(known, record(haproxy_backend="b2"), only=[]) == CHANGED


async def test_the_replay_starts_at_the_newest_snapshot_and_skips_malformed_entries():
    stream = FakeStreams([ev.encode(ready(1)), ev.encode(snapshot([1], "1-0")), ev.encode(ready(2)),
                          {"event": "{not json"}, ev.encode(snapshot([1, 2], "3-0")), ev.encode(ready(3))])
    fleet = await replay(stream, "s", Fleet(), ADMIT_ALL)
    assert set(fleet.routable()) == {"h:1", "h:2", "h:3"} and fleet.authoritative
    assert [r for r in stream.reads if r[0] == "fwd"] == [("fwd", "3-0", "+")]


async def test_the_replay_pages_through_a_long_stream_without_a_snapshot():
    stream = FakeStreams([ev.encode(ready(port)) for port in range(1, 1201)])
    fleet = await replay(stream, "s", Fleet(), ADMIT_ALL)
    assert len(fleet.routable()) == 1200 and not fleet.authoritative
    assert [r[0] for r in stream.reads] == ["rev"] * 3 + ["fwd"] * 2  # by 500 newest first, by 1000 oldest first
    assert stream.reads[1] == ("rev", "-", "(701-0") and stream.reads[4] == ("fwd", "(1000-0", "+")


def test_a_removed_record_stops_a_served_deployment_and_never_starts_one():
    known = record()
    assert record_change(known, known.model_copy(update={"removed": True}), only=[]) == REMOVED
    assert record_change(None, record(removed=True), only=[]) is None


async def test_a_removed_deployment_is_forgotten_and_a_read_from_before_its_removal_stays_out():
    work = PendingWork()
    discovery = Discovery(None, "r1", work, errors=None, poll_s=1.0, gate=gate())
    live = record()
    discovery.records["d"], discovery.fleets["d"] = live, Fleet()
    await discovery.add(live.model_copy(update={"removed": True}))
    assert discovery.records == {} and discovery.fleets == {}
    assert await work.next_reconcile(interval_s=0.01) == {"deployment"}  # the reconcile cleans its places
    await discovery.add(live)  # the hash read before the removal: the same record, the same ts
    assert discovery.records == {}


async def test_a_lifecycle_event_hands_its_addresses_to_the_apply_loop():
    work = PendingWork()
    discovery = Discovery(None, "r1", work, errors=None, poll_s=1.0, gate=gate())
    first, repeat = ready(1), ready(1)
    await discovery.on_lifecycle("d", "1-0", first)
    await discovery.on_lifecycle("d", "2-0", repeat)  # the same sequence again changes nothing
    await discovery.on_lifecycle("other", "3-0", ready(2))  # not this stream's deployment
    assert await work.next_changes(poll_s=0.01) == {"d": {"h:1"}}
    assert work.settled("d", None) == {"h:1": first.ts}


async def test_the_first_authoritative_snapshot_asks_for_a_full_reconcile():
    work = PendingWork()
    discovery = Discovery(None, "r1", work, errors=None, poll_s=1.0, gate=gate())
    await discovery.on_lifecycle("d", "1-0", snapshot([1], None))
    assert await work.next_reconcile(interval_s=0.01) == {"periodic"}
    await discovery.on_lifecycle("d", "2-0", snapshot([1], "1-0"))
    assert await work.next_reconcile(interval_s=0.01) == {"snapshot"}
