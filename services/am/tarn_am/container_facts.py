"""What the dashboard shows of each instance's container, from skein's reports alone: since
when it runs, how often its node's slot lost a container, where its logs are. Pure."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, Optional, Sequence
from urllib.parse import quote

from .containers import ObservedContainer


@dataclass(frozen=True)
class ContainerFacts:
    started_at: Optional[float]
    uptime_s: Optional[float]
    restarts: int  # containers of the same slot (node) that failed before this one
    logs_url: Optional[str]


def logs_url(node_http_address: str, yarn_container_id: str, user: Optional[str]) -> Optional[str]:
    """The NodeManager's page of the container's logs (it redirects to the log server once
    the logs are aggregated); None until YARN allocated the container."""
    if not node_http_address or not yarn_container_id.startswith("container_") or not user:
        return None
    return f"http://{node_http_address}/node/containerlogs/{quote(yarn_container_id)}/{quote(user)}"


def container_facts(containers: Sequence[ObservedContainer], now: float,
                    user: Optional[str]) -> Dict[str, ContainerFacts]:
    """By instance id, for every active container. Containers YARN reports FAILED (exited
    on their own, or killed by their node) count as restarts; the ones tarn-am released
    end KILLED and do not."""
    failed = Counter(c.service for c in containers if c.state == "failed")
    facts = {}
    for c in containers:
        if not c.active:
            continue
        uptime = max(0.0, round(now - c.started_at, 1)) if c.started_at is not None and c.state == "running" \
            else None
        facts[c.instance_id] = ContainerFacts(c.started_at, uptime, failed[c.service],
                                              logs_url(c.node_http_address, c.yarn_container_id, user))
    return facts
