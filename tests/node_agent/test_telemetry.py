"""Triton's Prometheus metrics -> per-model rates -> the normalized load."""
import pytest

from tarn_shared.events import GpuSample, ModelSample
from tarn_node_agent.telemetry import (MetricsParseError, is_idle, model_samples, normalized_load,
                                       parse_triton_metrics)


def metrics(success, failure, queue_us, pending):
    return f"""# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="identity",version="1"}} {success}
# HELP nv_inference_request_failure Number of failed inference requests
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="identity",reason="REJECTED",version="1"}} {failure}
nv_inference_request_failure{{model="identity",reason="BACKEND",version="1"}} 0
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="identity",version="1"}} {queue_us}
# HELP nv_inference_pending_request_count Instantaneous number of pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{{model="identity",version="1"}} {pending}
# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]
# TYPE nv_cpu_utilization gauge
nv_cpu_utilization 0.25
"""


def test_rates_come_from_the_difference_over_the_interval():
    before = parse_triton_metrics(metrics(100, 2, 10_000, 0))
    after = parse_triton_metrics(metrics(300, 6, 50_000, 3))

    [sample] = model_samples(before, after, 2.0)

    assert sample.name == "identity" and sample.version == "1"
    assert sample.request_rate_per_s == pytest.approx(102.0)
    assert sample.failure_rate_per_s == pytest.approx(2.0)
    assert sample.queue_time_per_request_us == pytest.approx(200.0)
    assert sample.pending_requests == 3


def test_a_restarted_triton_counts_from_zero_not_negative():
    [sample] = model_samples(parse_triton_metrics(metrics(500, 0, 0, 0)), parse_triton_metrics(metrics(10, 0, 0, 0)), 1.0)
    assert sample.request_rate_per_s == 10


def test_garbage_metrics_are_a_clear_error():
    with pytest.raises(MetricsParseError, match="not valid Prometheus text"):
        parse_triton_metrics("nv_inference_request_success{model=\"x\" 12 oops\n{{{")


def test_load_is_the_most_saturated_of_queue_pending_and_gpu():
    models = [ModelSample(name="a", request_rate_per_s=10, queue_time_per_request_us=50_000, pending_requests=2),
              ModelSample(name="b", request_rate_per_s=30, queue_time_per_request_us=10_000, pending_requests=2)]
    targets = dict(target_queue_time_us=100_000, target_pending_requests=8, target_gpu_utilization_pct=80)

    assert normalized_load(models, None, **targets) == pytest.approx(0.5)  # pending 4/8 beats queue 0.2
    gpus = [GpuSample(index=0, utilization_pct=96, memory_used_bytes=1, memory_total_bytes=2)]
    assert normalized_load(models, gpus, **targets) == pytest.approx(1.2)
    assert normalized_load([], None, **targets) == 0.0


def test_idle_needs_nothing_pending_and_no_request_finishing_between_snapshots():
    quiet = parse_triton_metrics(metrics(10, 0, 0, 0))
    busy = parse_triton_metrics(metrics(11, 0, 0, 0))
    queued = parse_triton_metrics(metrics(10, 0, 0, 1))

    assert is_idle([quiet, quiet, quiet])
    assert not is_idle([quiet, busy, busy])
    assert not is_idle([quiet, queued])
    assert not is_idle([quiet])
