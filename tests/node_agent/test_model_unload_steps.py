"""An unload's decisions (route away, then Triton idle, then unload), without clocks or servers."""
from tarn_node_agent.model_unload import NO_GATEWAY, NOT_ROUTED, ROUTED, TIMEOUT, UnloadWait, unload_step
from tarn_node_agent.telemetry import parse_triton_metrics


def snap(requests, pending=0, other_requests=0):
    """Triton's metrics: ``m`` (the model unloading) and ``other`` (busy elsewhere)."""
    return parse_triton_metrics(
        f'nv_inference_request_success{{model="m",version="1"}} {requests}\n'
        f'nv_inference_pending_request_count{{model="m",version="1"}} {pending}\n'
        f'nv_inference_request_success{{model="other",version="1"}} {other_requests}\n')


def run(state, steps):
    """``steps``: (now, gateway-sync's latest open count, Triton snapshot); when it went, and why."""
    decision = None
    for now, open_requests, snapshot in steps:
        decision, state = unload_step(state, now, open_requests=open_requests, snapshot=snapshot)
        if decision.go:
            return now, decision
    return None, decision


START = UnloadWait(model="m", started_at=0.0, timeout_s=30.0, first_word_s=5.0)


def test_an_idle_model_still_waits_until_gateway_sync_says_no_request_is_open():
    steps = [(t * 0.25, None if t < 4 else 2 if t < 8 else 0, snap(5)) for t in range(40)]
    at, decision = run(START, steps)
    assert at == 2.5  # 0 open at 2.0 s, then three idle snapshots
    assert decision.outcome == ROUTED and "routed away by gateway-sync" in decision.reason


def test_requests_still_finishing_in_triton_hold_the_unload_until_they_stop_counting():
    # gateway-sync says 0 at once, but Triton still finishes requests until 2.0 s.
    steps = [(t * 0.25, 0, snap(min(t, 8), pending=1 if t < 4 else 0)) for t in range(40)]
    at, decision = run(START, steps)
    assert at == 2.5
    assert decision.outcome == ROUTED


def test_other_models_busy_in_triton_do_not_hold_the_unload():
    steps = [(t * 0.25, 0, snap(5, other_requests=t * 10)) for t in range(40)]
    at, _ = run(START, steps)
    assert at == 0.5


def test_without_any_word_from_gateway_sync_the_unload_waits_only_the_first_word_window():
    steps = [(t * 0.25, None, snap(5)) for t in range(200)]
    at, decision = run(START, steps)
    assert at == 5.5  # no word within 5 s: nothing routes this deployment per model
    assert decision.outcome == NO_GATEWAY and "no word from gateway-sync within 5 s" in decision.reason


def test_once_gateway_sync_was_heard_silence_waits_for_the_whole_timeout():
    state = UnloadWait(model="m", started_at=0.0, timeout_s=30.0, first_word_s=5.0, gateway_known=True)
    at, decision = run(state, [(t * 0.25, None, snap(5)) for t in range(200)])
    assert at == 30.0
    assert decision.outcome == TIMEOUT
    assert decision.reason == ("unload wait timeout after 30 s "
                               "(gateway-sync did not confirm the model routed away)")


def test_requests_open_at_the_gateways_past_the_timeout_unload_anyway_and_say_so():
    at, decision = run(START, [(t * 0.25, 3, snap(5)) for t in range(200)])
    assert at == 30.0
    assert decision.outcome == TIMEOUT and "3 requests open at the gateways" in decision.reason


def test_a_word_after_the_first_word_window_is_not_waited_for_but_a_count_before_it_is():
    # A count above 0 within the window: gateway-sync is there, so the unload waits for its 0.
    steps = [(t * 0.25, None if t < 8 else 4 if t < 60 else 0, snap(5)) for t in range(200)]
    at, decision = run(START, steps)
    assert at == 15.5 and decision.outcome == ROUTED


def test_pending_requests_in_triton_past_the_timeout_are_named():
    at, decision = run(START, [(t * 0.25, 0, snap(5, pending=2)) for t in range(200)])
    assert at == 30.0
    assert decision.reason.endswith("routed away by gateway-sync; 2 requests pending in Triton)")


def test_an_instance_not_ready_waits_only_for_triton():
    state = UnloadWait(model="m", started_at=0.0, timeout_s=30.0, first_word_s=5.0, gateways_done=NOT_ROUTED)
    at, decision = run(state, [(t * 0.25, None, snap(5)) for t in range(40)])
    assert at == 0.5 and decision.outcome == NOT_ROUTED
