"""The drain's decisions, without clocks or servers."""
from tarn_node_agent.drain import COUNT_WAIT_S, DrainState, drain_step, terminate_timeout_s, with_deadline
from tarn_node_agent.telemetry import parse_triton_metrics


def snap(requests, pending=0):
    return parse_triton_metrics(
        f'nv_inference_request_success{{model="m",version="1"}} {requests}\n'
        f'nv_inference_pending_request_count{{model="m",version="1"}} {pending}\n')


def run(state, steps):
    """``steps``: (now, unrouted seen, open requests gateway-sync counted, Triton snapshot)."""
    decision = None
    for now, unrouted, open_requests, snapshot in steps:
        decision, state = drain_step(state, now, unrouted_seen=unrouted, open_requests=open_requests,
                                     snapshot=snapshot)
        if decision.stop:
            return now, decision
    return None, decision


START = DrainState(started_at=0.0, timeout_s=60.0, unrouted_timeout_s=10.0)


def test_an_idle_instance_still_waits_for_gateway_sync_before_stopping():
    at, decision = run(START, [(t * 0.25, t >= 20, 0 if t >= 20 else None, snap(5)) for t in range(40)])
    assert at == 5.5  # unrouted with nothing open at 5.0 s, then three idle snapshots
    assert decision.reason == "drained: unrouted, 0 requests open at the gateways, no request in Triton"


def test_requests_executing_at_the_gateways_hold_the_stop_though_triton_shows_none_pending():
    # A 2 s request executes: Triton's pending gauge is 0 and its counters stand still.
    steps = [(t * 0.25, True, 3 if t < 12 else 0, snap(7)) for t in range(40)]
    at, decision = run(START, steps)
    assert at == 3.5  # the count reached 0 at 3.0 s, then three idle snapshots
    assert "0 requests open at the gateways" in decision.reason


def test_requests_finishing_in_triton_hold_the_stop_until_they_stop_counting():
    steps = [(0.0, True, 0, snap(1, pending=2)), (0.25, True, 0, snap(2, pending=1)), (0.5, True, 0, snap(3)),
             (0.75, True, 0, snap(4)), (1.0, True, 0, snap(4)), (1.25, True, 0, snap(4)), (1.5, True, 0, snap(4))]
    at, _ = run(START, steps)
    assert at == 1.25


def test_without_a_count_from_gateway_sync_only_triton_decides_after_a_short_wait():
    at, decision = run(START, [(t * 0.5, True, None, snap(5)) for t in range(40)])
    assert at == COUNT_WAIT_S + 1.0  # three idle snapshots after the count wait
    assert "no count of open requests from gateway-sync" in decision.reason


def test_a_missing_unrouted_event_is_waited_for_only_until_its_timeout():
    at, decision = run(START, [(t * 0.5, False, None, snap(5)) for t in range(40)])
    assert at == 11.0
    assert "did not confirm unrouted within 10 s" in decision.reason


def test_the_drain_timeout_stops_an_instance_the_gateways_still_send_to():
    at, decision = run(START, [(float(t), True, 4, snap(t)) for t in range(100)])
    assert at == 60.0
    assert decision.reason == "drain timeout after 60 s (4 requests open at the gateways)"


def test_the_drain_timeout_names_what_triton_still_holds():
    at, decision = run(START, [(float(t), True, 0, snap(t, pending=4)) for t in range(100)])
    assert at == 60.0 and "4 requests pending in Triton" in decision.reason


def test_unreadable_metrics_end_in_the_timeout_not_in_a_stop_on_no_data():
    at, decision = run(START, [(float(t), True, 0, None) for t in range(100)])
    assert at == 60.0 and "metrics unreadable" in decision.reason


def test_a_sigterm_during_a_drain_brings_its_end_forward_to_the_kill_delay():
    state = with_deadline(START, 20.0)
    at, decision = run(state, [(float(t), True, 2, snap(t)) for t in range(100)])
    assert at == 20.0 and decision.reason.startswith("drain timeout after 20 s")
    assert with_deadline(START, 500.0).timeout_s == 60.0


def test_the_sigterm_drain_fits_in_the_nodemanagers_kill_delay():
    assert terminate_timeout_s(None, 90_000) == 80.0
    assert terminate_timeout_s(None, None) == 0.0  # Hadoop's default 250 ms: no time to drain
    assert terminate_timeout_s(None, 5_000) == 0.0
    assert terminate_timeout_s(12.0, 90_000) == 12.0
