"""Containers as skein reports them, and what tarn-am may do with them: the reconcile
decision's input (``ObservedContainer``, per-node ``Slot``) and its actions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

ACTIVE_STATES = frozenset({"waiting", "requested", "running"})
FINISHED_STATES = frozenset({"succeeded", "failed", "killed"})


@dataclass(frozen=True)
class Slot:
    """One per-node skein service: at most one Triton container on ``host``."""

    service: str
    host: str


@dataclass(frozen=True)
class ObservedContainer:
    """A skein container as ``get_containers`` reports it (all states)."""

    skein_id: str  # "<service>_<instance>": what kill_container takes
    service: str
    state: str  # lower-case skein ContainerState
    yarn_container_id: str = ""  # empty while only requested
    host: str = ""
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    exit_message: str = ""
    node_http_address: str = ""  # the NodeManager's web address (host:port), for the logs link

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def instance_id(self) -> str:
        """Node-agents name their instance by YARN's container id; skein's before allocation."""
        return self.yarn_container_id or self.skein_id


@dataclass(frozen=True)
class StartContainer:
    service: str
    host: str
    reason: str


@dataclass(frozen=True)
class OnContainer:
    """An action on one container: skein's id to act on, the instance id to report."""

    skein_id: str
    instance_id: str


@dataclass(frozen=True)
class SendDrain(OnContainer):
    command_id: str
    timeout_s: float
    first: bool


@dataclass(frozen=True)
class ReleaseContainer(OnContainer):
    reason: str


@dataclass(frozen=True)
class ContainerLost(OnContainer):
    """A container ended (or was given up on) without being asked to: announce it."""

    service: str
    host: str
    exit_message: str
    failures_in_window: int
    crash_looping: bool


Action = Union[StartContainer, SendDrain, ReleaseContainer, ContainerLost]
