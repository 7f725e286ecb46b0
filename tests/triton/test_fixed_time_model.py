"""The fixed-time test model (tests/load_models/fixed_time) on the real tritonserver: one request
at a time, ``delay_ms`` each, so N concurrent clients make each request queue about (N - 1) x
delay. The autoscaling test on YARN sets its load figure with the client count, so this is what
it relies on, read through the node-agent's own metrics parsing."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tarn_node_agent.telemetry import model_samples, normalized_load, parse_triton_metrics

pytestmark = [pytest.mark.integration]
LOAD_MODELS = Path(__file__).resolve().parents[1] / "load_models"
BODY = {"inputs": [{"name": "INPUT0", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}


def test_four_clients_queue_about_three_delays_each_and_one_client_none(start_triton, tmp_path):
    repo = shutil.copytree(LOAD_MODELS, tmp_path / "models", ignore=shutil.ignore_patterns("__pycache__"))
    server = start_triton(repo)
    url = f"{server.http_url}/v2/models/fixed_time/infer"

    def measure(clients: int, seconds: float = 4.0):
        before = parse_triton_metrics(httpx.get(server.metrics_url, timeout=5).text)
        stop, done, lock = threading.Event(), [], threading.Lock()

        def client():
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    response = http.post(url, json=BODY)
                    with lock:
                        done.append(response.json()["outputs"][0]["data"] == [1.0, 2.0])
        threads = [threading.Thread(target=client) for _ in range(clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        elapsed = time.monotonic() - started
        after = parse_triton_metrics(httpx.get(server.metrics_url, timeout=5).text)
        [sample] = [s for s in model_samples(before, after, elapsed) if s.name == "fixed_time"]
        load = normalized_load([sample], None, target_queue_time_us=100_000, target_pending_requests=8,
                               target_gpu_utilization_pct=90)
        return all(done), len(done) / elapsed, sample.queue_time_per_request_us / 1000, load

    ok, rate, queue_ms, load = measure(1)
    assert ok and 5 <= rate <= 10.5 and queue_ms < 20 and load < 0.2, (rate, queue_ms, load)  # 100 ms each
    ok, rate, queue_ms, load = measure(4)
    print(f"\n[fixed_time] 4 clients: {rate:.1f} requests/s, queue {queue_ms:.0f} ms/request, load {load:.2f}")
    assert ok and rate <= 10.5  # still one at a time
    assert 200 <= queue_ms <= 400 and load >= 2.0, (rate, queue_ms, load)
