"""The drain handshake's decisions, without clocks or servers."""
from tarn_node_agent.drain import DrainState, drain_step
from tarn_node_agent.telemetry import parse_triton_metrics


def snap(requests, pending=0):
    return parse_triton_metrics(
        f'nv_inference_request_success{{model="m",version="1"}} {requests}\n'
        f'nv_inference_pending_request_count{{model="m",version="1"}} {pending}\n')


def run(state, steps):
    decision = None
    for now, unrouted, snapshot in steps:
        decision, state = drain_step(state, now, unrouted_seen=unrouted, snapshot=snapshot)
        if decision.stop:
            return now, decision
    return None, decision


START = DrainState(started_at=0.0, timeout_s=60.0, unrouted_timeout_s=10.0)


def test_an_idle_instance_still_waits_for_gateway_sync_before_stopping():
    at, decision = run(START, [(t * 0.25, t >= 20, snap(5)) for t in range(40)])
    assert at == 5.5  # unrouted at 5.0 s, then three idle snapshots
    assert "unrouted" in decision.reason and "no request in flight" in decision.reason


def test_requests_in_flight_hold_the_stop_until_they_finish():
    steps = [(0.0, True, snap(1, pending=2)), (0.25, True, snap(2, pending=1)), (0.5, True, snap(3)),
             (0.75, True, snap(4)), (1.0, True, snap(4)), (1.25, True, snap(4)), (1.5, True, snap(4))]
    at, _ = run(START, steps)
    assert at == 1.25


def test_a_missing_unrouted_event_is_waited_for_only_until_its_timeout():
    at, decision = run(START, [(t * 0.5, False, snap(5)) for t in range(40)])
    assert at == 11.0
    assert "did not confirm unrouted within 10 s" in decision.reason


def test_the_drain_timeout_stops_a_busy_instance():
    at, decision = run(START, [(float(t), True, snap(t, pending=4)) for t in range(100)])
    assert at == 60.0
    assert "drain timeout after 60 s" in decision.reason and "4 requests pending" in decision.reason


def test_unreadable_metrics_end_in_the_timeout_not_in_a_stop_on_no_data():
    at, decision = run(START, [(float(t), True, None) for t in range(100)])
    assert at == 60.0 and "metrics unreadable" in decision.reason
