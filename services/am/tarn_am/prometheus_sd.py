"""Prometheus HTTP service discovery: what Prometheus should scrape in this deployment.

``GET /api/prometheus/targets[?role=am|node-agent|triton]`` answers Prometheus' http_sd
format, a JSON list of ``{"targets": ["host:port"], "labels": {...}}``: tarn-am itself,
every node-agent's own /metrics and every Triton's metrics port, labelled ``deployment``,
``instance`` (the YARN container id) and ``host``. The list is a pure function of the
fleet's members (``scrape_targets``); the router only reads the view.
"""
from __future__ import annotations

import os
from enum import Enum
from typing import Callable, Collection, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from fastapi import APIRouter
from pydantic import BaseModel

from tarn_shared import events as ev
from tarn_shared.membership import Member

TARGETS_ROUTE = "/api/prometheus/targets"


class Role(str, Enum):
    am = "am"
    node_agent = "node-agent"
    triton = "triton"


class TargetGroup(BaseModel):
    """One entry of Prometheus' http_sd answer."""

    targets: List[str]
    labels: Dict[str, str]


def _group(address: str, role: Role, deployment: str, instance: str, host: str,
           extra: Optional[Dict[str, str]] = None) -> TargetGroup:
    # __meta_* labels are for relabeling only (one job may keep one role); Prometheus drops them after.
    labels = {"deployment": deployment, "instance": instance, "host": host, "__meta_tarn_role": role.value,
              **(extra or {})}
    return TargetGroup(targets=[address], labels=labels)


def am_group(deployment: str, am_url: Optional[str], container_id: Optional[str]) -> Optional[TargetGroup]:
    """tarn-am itself, at the address it advertises (``http://host:port``); None before it has one."""
    if not am_url:
        return None
    parts = urlsplit(am_url)
    if not parts.hostname or not parts.port:
        return None
    address = f"{parts.hostname}:{parts.port}"
    return _group(address, Role.am, deployment, container_id or address, parts.hostname,
                  {"__scheme__": parts.scheme or "http"})


def member_groups(deployment: str, member: Member) -> List[TargetGroup]:
    """The node-agent and the Triton of one instance, for as long as it is not stopped."""
    endpoints = member.endpoints
    if member.state is ev.InstanceState.STOPPED or endpoints is None:
        return []
    state = {"__meta_tarn_state": member.state.value}
    groups = []
    # Agents older than the agent_port field do not announce theirs: only their Triton is found.
    if endpoints.agent_port:
        groups.append(_group(f"{endpoints.host}:{endpoints.agent_port}", Role.node_agent, deployment,
                             member.instance_id, endpoints.host, state))
    if endpoints.metrics_port:
        groups.append(_group(f"{endpoints.host}:{endpoints.metrics_port}", Role.triton, deployment,
                             member.instance_id, endpoints.host, state))
    return groups


def scrape_targets(deployment: str, members: Mapping[str, Member], am: Optional[TargetGroup] = None,
                   roles: Collection[Role] = tuple(Role)) -> List[TargetGroup]:
    """Every target of the wanted roles, tarn-am first, then the instances in id order."""
    groups = [am] if am is not None else []
    for instance_id in sorted(members):
        groups.extend(member_groups(deployment, members[instance_id]))
    return [g for g in groups if Role(g.labels["__meta_tarn_role"]) in roles]


def prometheus_router(deployment: str, members: Callable[[], Mapping[str, Member]],
                      am_url: Callable[[], Optional[str]], token, container_id: Optional[str] = None) -> APIRouter:
    """The SD route, behind ``token`` (a FastAPI dependency) like the other API routes."""
    router = APIRouter()
    # YARN names the AM's own container in its environment.
    am_instance = container_id or os.environ.get("CONTAINER_ID")

    @router.get(TARGETS_ROUTE, dependencies=[token], response_model=List[TargetGroup],
                summary="Prometheus HTTP service discovery: tarn-am, every node-agent and every Triton")
    async def prometheus_targets(role: Optional[Role] = None) -> List[TargetGroup]:
        return scrape_targets(deployment, members(), am_group(deployment, am_url(), am_instance),
                              (role,) if role else tuple(Role))

    return router
