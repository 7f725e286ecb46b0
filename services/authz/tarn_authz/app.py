"""create_app(settings): wiring only. Clients open in the lifespan; nothing at import time."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import AsyncIterator, Callable, Optional

import httpx
from fastapi import FastAPI

from tarn_shared.deployments import read_records
from tarn_shared.streams import StreamPublisher, connect

from .api import Services, router
from .audit import AuditSink
from .audit_summary import router as audit_summary_router
from .hdfs_audit import HdfsAuditWriter
from .decisions import Decider
from .identity import CallerCheck
from .decision_metrics import AuthzMetrics, PolicyCollector
from .ranger_admin import RangerAdminClient
from .registry import PolicyRegistry, Source
from .settings import AuthzSettings
from .spoa import SpoaAgent
from .sources import DiskCache, FolderSource, RangerSource

# How tarn-authz is served. proxy_headers off: uvicorn would take X-Forwarded-For from any
# loopback caller; identity.client_address takes it from trusted gateways only.
SERVER_OPTIONS = {"proxy_headers": False, "log_config": None, "access_log": False}

log = logging.getLogger(__name__)


def source_factory(settings: AuthzSettings, http: Optional[httpx.AsyncClient]) -> Callable[[str], Source]:
    """Ranger Admin when a URL is set, else the local folder."""

    def make(service: str) -> Source:
        if settings.ranger_url and http is not None:
            return RangerSource(RangerAdminClient(http, settings.ranger_url, service, app_id=settings.ranger_app_id,
                                                  cluster_name=settings.ranger_cluster_name,
                                                  secure=settings.secure_download))
        assert settings.policy_dir is not None, "settings validation requires policy_dir without ranger_url"
        return FolderSource(settings.policy_dir, service)

    return make


def create_app(settings: AuthzSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = AuthzMetrics()
        stop = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            http = None
            if settings.ranger_url:
                http = await stack.enter_async_context(RangerAdminClient.open_http(settings))
            redis = None
            if settings.serve_deployments or settings.ranger_audit:
                redis = connect(settings.redis_url, socket_timeout_s=5.0)
                stack.push_async_callback(redis.aclose)
            registry = PolicyRegistry(
                default_service=settings.ranger_service, default_audit=settings.ranger_audit,
                make_source=source_factory(settings, http), disk_cache=DiskCache(settings.cache_dir,
                                                                                  settings.ranger_app_id),
                metrics=metrics, max_policy_age_s=settings.max_policy_age_s)
            metrics.registry.register(PolicyCollector(lambda: registry.states, settings.max_policy_age_s))
            audit = AuditSink(app_id=settings.ranger_app_id, metrics=metrics,
                              publisher=StreamPublisher(redis) if redis is not None else None,
                              log_path=settings.audit_log, queue_size=settings.audit_queue_size,
                              cluster_name=settings.ranger_cluster_name, hdfs=hdfs_audit(settings))
            decider = Decider(metrics, audit, settings.max_policy_age_s)
            app.state.services = Services(registry, decider, CallerCheck(settings), metrics)
            records = (lambda: read_records(redis)) if settings.serve_deployments and redis is not None else None
            await registry.refresh_all()  # serve with what we have at once: Ranger, else the disk copy
            agent = SpoaAgent(registry, decider, metrics)
            if settings.spoa_socket is not None:
                await agent.start(settings.spoa_socket)
            tasks = [asyncio.create_task(registry.run(stop, settings.refresh_interval_s, records,
                                                      settings.deployments_interval_s), name="policy-refresh"),
                     asyncio.create_task(audit.run(stop), name="audit")]
            try:
                yield
            finally:
                await agent.stop()  # before the audit stops: its last decisions are audited too
                stop.set()
                await asyncio.wait(tasks, timeout=5.0)
                for task in tasks:
                    task.cancel()

    app = FastAPI(title="tarn-authz", version="0.1.0", lifespan=lifespan,
                  description="Ranger-exact policy decision point for Triton models (service type `triton`).")
    app.include_router(router)
    app.include_router(audit_summary_router)
    return app


def hdfs_audit(settings: AuthzSettings) -> Optional[HdfsAuditWriter]:
    if not settings.audit_hdfs_url:
        return None
    return HdfsAuditWriter(settings.audit_hdfs_url, settings.audit_hdfs_dir, settings.ranger_app_id,
                           socket.gethostname(), settings.audit_hdfs_user)
