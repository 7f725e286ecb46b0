"""The one adapter to tritonserver: its process, and its HTTP and metrics endpoints."""
from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import signal
import subprocess
from typing import Dict, List, Optional, Sequence
from urllib.parse import quote

import httpx

from .errors import TritonError
from .settings import MODEL_NAME

log = logging.getLogger(__name__)


class Health(str, enum.Enum):
    READY = "ready"
    NOT_READY = "not ready"
    UNREACHABLE = "unreachable"
    HUNG = "not answering in time"


class TritonProcess:
    """tritonserver (or mpirun and its ranks) in its own process group; output goes to the
    agent's stdout and stderr, which is the container log."""

    def __init__(self) -> None:
        self._process: Optional[subprocess.Popen] = None

    def start(self, argv: Sequence[str], env: Dict[str, str]) -> int:
        try:
            self._process = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        except OSError as exc:
            raise TritonError(f"cannot start {argv[0]}: {exc.strerror}") from None
        log.info("tritonserver started", extra={"pid": self._process.pid, "executable": argv[0]})
        return self._process.pid

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process else None

    def exit_code(self) -> Optional[int]:
        return self._process.poll() if self._process else None

    def signal(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass

    async def wait(self, timeout_s: Optional[float] = None) -> Optional[int]:
        """The exit code, or None if still running after ``timeout_s``."""
        if self._process is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            code = self._process.poll()
            if code is not None:
                return code
            if deadline is not None and loop.time() >= deadline:
                return None
            await asyncio.sleep(0.1)

    async def stop(self, grace_s: float) -> Optional[int]:
        """SIGTERM (Triton then finishes in-flight requests, up to its exit timeout), then
        SIGKILL to the group once ``grace_s`` has passed."""
        self.signal(signal.SIGTERM)
        code = await self.wait(grace_s)
        if code is None:
            log.warning("tritonserver ignored SIGTERM; killing it", extra={"pid": self.pid, "grace_s": grace_s})
            self.signal(signal.SIGKILL)
            code = await self.wait(10.0)
        return code


class TritonApi:
    """Triton's HTTP/REST (KServe v2 + repository extension) and metrics endpoints."""

    def __init__(self, host: str, http_port: int, metrics_port: int, timeout_s: float = 5.0) -> None:
        # No idle keep-alive connection: Triton's shutdown waits (up to --exit-timeout-secs) for
        # every open HTTP connection, the agent's own probe connection included.
        self._http = httpx.AsyncClient(base_url=f"http://{host}:{http_port}", timeout=timeout_s, trust_env=False,
                                       limits=httpx.Limits(max_keepalive_connections=0))
        self._metrics_url = f"http://{host}:{metrics_port}/metrics"

    def send_gateway_key(self, header: str, key: str) -> None:
        """Triton restricts the repository API the agent uses (index, load, unload) to this key."""
        self._http.headers[header] = key

    async def close(self) -> None:
        await self._http.aclose()

    async def health(self) -> Health:
        try:
            response = await self._http.get("/v2/health/ready")
        except httpx.TimeoutException:
            return Health.HUNG
        except httpx.TransportError:
            return Health.UNREACHABLE
        return Health.READY if response.status_code == 200 else Health.NOT_READY

    async def ready_models(self) -> List[str]:
        response = await self._call("POST", "/v2/repository/index", json={"ready": True})
        return sorted({item["name"] for item in response.json() if item.get("state", "READY") == "READY"})

    async def model_index(self) -> List[Dict[str, object]]:
        """Every model in the repository with its state (and Triton's reason when unavailable)."""
        response = await self._call("POST", "/v2/repository/index", json={})
        entries = response.json()
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    async def load_model(self, model: str, config: Optional[str] = None) -> None:
        body = {"parameters": {"config": config}} if config else None
        if config:
            try:
                json.loads(config)
            except ValueError:
                raise TritonError(f"the configuration for {model!r} is not JSON") from None
        await self._call("POST", f"/v2/repository/models/{_model_path(model)}/load", json=body, timeout=600.0)

    async def unload_model(self, model: str) -> None:
        await self._call("POST", f"/v2/repository/models/{_model_path(model)}/unload", timeout=600.0)

    async def metrics_text(self) -> str:
        try:
            response = await self._http.get(self._metrics_url)
        except httpx.HTTPError as exc:
            raise TritonError(f"Triton metrics unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise TritonError(f"Triton metrics answered {response.status_code}")
        return response.text

    async def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TritonError(f"Triton unreachable for {method} {path}: {type(exc).__name__}") from None
        if response.status_code != 200:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise TritonError(f"Triton refused {method} {path}: {response.status_code} {message[:500]}")
        return response


def _model_path(model: str) -> str:
    if not MODEL_NAME.match(model):
        raise TritonError(f"invalid model name {model[:64]!r}")
    return quote(model, safe="")
