"""Real HTTP servers for the authz tests: uvicorn serving an ASGI app in a thread of the
test process, on a free loopback port."""
from __future__ import annotations

import threading
from typing import Optional

import uvicorn

from tests.support.polling import wait_for
from tests.support.ports import LOOPBACK, free_port


class ServerThread:
    def __init__(self, app, port: Optional[int] = None, **options) -> None:
        """``options``: uvicorn.Config's, as the service passes them (tarn_authz.app.SERVER_OPTIONS)."""
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        options = {"log_config": None, "access_log": False, **options}
        self._server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=self.port, lifespan="on", **options))
        self._thread: Optional[threading.Thread] = None

    def start(self, timeout_s: float = 30.0) -> "ServerThread":
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        wait_for(self._started, timeout_s, f"the server on port {self.port} to start", interval_s=0.02)
        return self

    def _started(self) -> bool:
        if self._server.started:
            return True
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError(f"the server on port {self.port} exited while starting")
        return False

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
