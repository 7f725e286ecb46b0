"""Steady Open Inference Protocol requests from background threads, every outcome kept.

One load generator for every test that asks "did any request fail while X happened":
each thread sends one echo inference after the other (INPUT0 -> OUTPUT0, FP32) to its URL
and records when it started, when it ended and, for a failure, why.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import httpx

VALUES = [1.0, 2.0, 3.0, 4.0]
BODY = {"inputs": [{"name": "INPUT0", "shape": [len(VALUES)], "datatype": "FP32", "data": VALUES}]}


@dataclass(frozen=True)
class Outcome:
    url: str
    started_at: float
    ended_at: float
    error: Optional[str] = None  # None: 200 with the echoed values


def outcome_error(response: httpx.Response) -> Optional[str]:
    if response.status_code != 200:
        return f"http {response.status_code}"
    data = response.json()["outputs"][0]["data"]
    return None if data == VALUES else f"wrong answer {data!r}"


class InferenceLoad:
    """``threads`` threads per URL, each inferring ``model`` one request after the other until
    the block ends; ``interval_s`` pauses between a thread's requests."""

    def __init__(self, urls: Sequence[str], model: str = "identity", threads: int = 1,
                 headers: Optional[Mapping[str, str]] = None, interval_s: float = 0.0,
                 timeout_s: float = 30) -> None:
        self.model, self.headers, self.interval_s, self.timeout_s = model, dict(headers or {}), interval_s, timeout_s
        self.outcomes: List[Outcome] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url,), daemon=True)
                         for url in urls for _ in range(threads)]

    def _run(self, url: str) -> None:
        with httpx.Client(base_url=url, headers=self.headers, timeout=self.timeout_s, trust_env=False) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    error = outcome_error(http.post(f"/v2/models/{self.model}/infer", json=BODY))
                except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
                    error = repr(exc)[:300]
                with self._lock:
                    self.outcomes.append(Outcome(url, started, time.monotonic(), error))
                if error is not None or self.interval_s:
                    # A refused connection fails at once: pause rather than spin.
                    time.sleep(max(self.interval_s, 0.05 if error else 0.0))

    @property
    def ok(self) -> int:
        return sum(1 for o in self.outcomes if o.error is None)

    @property
    def failed(self) -> List[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    def failures_by_kind(self) -> Dict[str, int]:
        return dict(Counter(o.error.split("(")[0] for o in self.failed))

    def succeeded_after(self, at: float) -> int:
        return sum(1 for o in self.outcomes if o.error is None and o.started_at >= at)

    def summary(self) -> str:
        return f"{self.ok} ok, {len(self.failed)} failed {self.failures_by_kind()}"

    def start(self) -> "InferenceLoad":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def __enter__(self) -> "InferenceLoad":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
