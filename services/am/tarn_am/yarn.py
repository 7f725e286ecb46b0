"""The one adapter between tarn-am and YARN: skein's ApplicationClient, errors translated once."""
from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Callable, Mapping, Optional, Tuple, TypeVar

import skein
from skein.exceptions import ConnectionError as SkeinConnectionError
from skein.exceptions import SkeinError

from tarn_shared.errors import TarnError, UnavailableError
from tarn_shared.streams import as_text

from .containers import ObservedContainer

log = logging.getLogger(__name__)
T = TypeVar("T")

ALL_STATES = ("WAITING", "REQUESTED", "RUNNING", "SUCCEEDED", "FAILED", "KILLED")
KV_AM_ADDRESS = "tarn.am.address"
KV_DESIRED = "tarn.desired"


class YarnError(TarnError):
    """skein refused a request (bad service name, unknown container...)."""


def _translated(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SkeinConnectionError as exc:
            raise UnavailableError(f"skein application master unreachable: {exc}") from None
        except (SkeinError, ValueError, KeyError) as exc:
            raise YarnError(f"skein: {exc}") from None
    return call


def to_observed(container: "skein.model.Container") -> ObservedContainer:
    host = container.yarn_node_http_address.rsplit(":", 1)[0] if container.yarn_node_http_address else ""
    return ObservedContainer(
        skein_id=container.id,
        service=container.service_name,
        state=str(container.state).lower(),
        yarn_container_id=container.yarn_container_id or "",
        host=host,
        started_at=_epoch(container.start_time),
        finished_at=_epoch(container.finish_time),
        exit_message=(container.exit_message or "").strip()[:2000],
        node_http_address=container.yarn_node_http_address or "",
    )


def _epoch(moment: Optional[datetime]) -> Optional[float]:
    return moment.timestamp() if moment is not None else None


class YarnAdapter:
    """Blocking calls (gRPC to skein's Java AM); the control loop runs them in a thread."""

    def __init__(self, client: "skein.ApplicationClient") -> None:
        self._client = client
        # What a new container carries beyond its service's spec (token_keeper: fresh tokens).
        self.container_env: Callable[[], Mapping[str, str]] = dict

    @classmethod
    @_translated
    def from_current(cls) -> "YarnAdapter":
        return cls(skein.ApplicationClient.from_current())

    @property
    def app_id(self) -> str:
        return self._client.id

    @_translated
    def containers(self) -> Tuple[ObservedContainer, ...]:
        return tuple(to_observed(c) for c in self._client.get_containers(states=ALL_STATES))

    @_translated
    def start(self, service: str) -> None:
        env = dict(self.container_env())
        if not env:
            # count=1, not delta: a repeated call after a lost reply cannot ask for two.
            self._client.scale(service, count=1)
            return
        # Only add_container takes an environment, and it adds one on every call: ask once the
        # service has none live, so that a repeated call after a lost reply cannot ask for two.
        if not self._client.get_containers(services=[service], states=("WAITING", "REQUESTED", "RUNNING")):
            self._client.add_container(service, env=env)

    @_translated
    def release(self, skein_id: str) -> None:
        self._client.kill_container(skein_id)

    @_translated
    def kv_get(self, key: str) -> Optional[str]:
        value = self._client.kv.get(key)
        return None if value is None else as_text(value)

    @_translated
    def kv_put(self, key: str, value: str) -> None:
        self._client.kv[key] = value.encode()

    @_translated
    def add_page(self, route: str, target: str, link_name: str) -> None:
        pages = {p.route: p for p in self._client.ui.get_pages().values()} if hasattr(
            self._client.ui.get_pages(), "values") else {}
        if route in pages:
            if pages[route].target == target:
                return
            self._client.ui.remove_page(route)
        self._client.ui.add_page(route, target, link_name=link_name)
