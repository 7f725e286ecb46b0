"""The node-agent's run, wiring its parts: preparation (secrets, staging, launch plan),
tritonserver, then readiness, reports (heartbeats, telemetry) and commands until the
shutdown ends it. Each part acts through one adapter; the decisions (launch plan, drain,
telemetry, layout) are pure functions elsewhere."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Dict, Optional

import uvicorn

from tarn_shared import events as ev
from tarn_shared.errors import ConfigError, TarnError, UnavailableError
from tarn_shared.hadoop_conf import read_hadoop_conf
from tarn_shared.streams import StreamPublisher, connect

from .agent_metrics import AgentStatus
from .announcer import Announcer
from .app import create_app
from .commands import Acks, Commands
from .drain import terminate_timeout_s
from .drainer import Drainer
from .errors import SecretsError, StagingError, TritonError
from .launch import GATEWAY_KEY_HEADER
from .lifecycle import Lifecycle
from .model_loads import ModelLoads
from .model_memory import reading
from .model_unloader import ModelUnloader
from .nvml import GpuReader
from .preparation import prepare
from .process_memory import group_rss_bytes
from .readiness import Readiness
from .reporting import Reporter
from .settings import NodeAgentSettings
from .shutdown import Shutdown
from .triton import TritonApi, TritonProcess

log = logging.getLogger(__name__)
EXIT_CONFIG = 2
EXIT_STAGING = 3
EXIT_TRITON = 4


class NodeAgent:
    def __init__(self, settings: NodeAgentSettings, *, gpu: Optional[GpuReader] = None,
                 environ: Optional[Dict[str, str]] = None) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.gpu = gpu or GpuReader()
        host = settings.advertise_host or socket.getfqdn()
        self.lifecycle = Lifecycle(settings.deployment, settings.app_id or "", settings.container_id or "",
                                   ev.Endpoints(host=host, http_port=settings.http_port,
                                                grpc_port=settings.grpc_port, metrics_port=settings.metrics_port))
        self.status = AgentStatus(instance_state=lambda: self.lifecycle.state)
        self.process = TritonProcess()
        local = "127.0.0.1" if settings.triton_bind in ("0.0.0.0", "::", "") else settings.triton_bind
        self.api = TritonApi(local, settings.http_port, settings.metrics_port, timeout_s=settings.probe_timeout_s)
        self.agent_port: Optional[int] = None

    async def run(self) -> int:
        s = self.settings
        redis = connect(s.redis_url)
        publisher = StreamPublisher(redis)
        announcer = Announcer(self.lifecycle, publisher, s.deployment)
        acks = Acks(s, publisher)
        drainer = Drainer(s, self.api, self.process, announcer, redis)
        terminate_s = terminate_timeout_s(s.terminate_drain_timeout_s, nodemanager_kill_delay_ms(self.environ))
        log.info("a SIGTERM drains for at most this long", extra={"terminate_drain_timeout_s": terminate_s})
        shutdown = Shutdown(s, self.process, announcer, self.status, drainer, acks.send, terminate_s)
        server, server_task = await self._start_http()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, shutdown.on_terminate)
        try:
            try:
                prepared = await asyncio.to_thread(prepare, s, self.environ, self.status.staging, self.gpu)
            except ConfigError as exc:
                return await shutdown.failed_before_start(f"configuration: {exc}", EXIT_CONFIG)
            except (StagingError, SecretsError, UnavailableError, TarnError) as exc:
                return await shutdown.failed_before_start(str(exc), EXIT_STAGING)
            if shutdown.terminating:
                return await shutdown.terminated_before_start()
            log.info("starting tritonserver", extra={"parallelism": prepared.plan.parallelism,
                                                      "model_repository": str(prepared.staged.path),
                                                      "secret_env": prepared.secret_names,
                                                      "gateway_key": prepared.gateway_key is not None})
            if prepared.gateway_key is not None:
                self.api.send_gateway_key(GATEWAY_KEY_HEADER, prepared.gateway_key)
            try:
                self.process.start(prepared.plan.argv, prepared.plan.env)
            except TritonError as exc:
                return await shutdown.failed_before_start(str(exc), EXIT_TRITON)
            readiness = Readiness(s, self.api, announcer, self.status)
            loads = ModelLoads(self.api, lambda: reading(group_rss_bytes(self.process.pid), self.gpu.read()))
            reporter = Reporter(s, self.api, self.gpu, publisher, self.lifecycle, self.status,
                                loads if s.model_control_mode == "explicit" else None)
            unloader = ModelUnloader(s, self.api, loads, announcer, redis, outcomes=self.status.model_unloads)
            commands = Commands(s, redis, loads, unloader, acks, self.lifecycle, self.status,
                                start_drain=shutdown.start_drain, models_changed=readiness.announce_ready)

            async def serve() -> None:
                await readiness.become_ready()
                await asyncio.gather(readiness.monitor(), reporter.telemetry(), commands.run(shutdown.ended))

            await _supervise(shutdown, [shutdown.watch_process(), serve(), reporter.heartbeats()])
            return shutdown.exit_code
        finally:
            server.should_exit = True
            await asyncio.wait([server_task], timeout=5)
            await self.api.close()
            self.gpu.close()
            await redis.aclose()

    async def _start_http(self):
        app = create_app(self.settings, self.status, self.gpu.read)
        config = uvicorn.Config(app, host=self.settings.agent_host, port=self.settings.agent_port,
                                log_config=None, access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # the agent handles SIGTERM itself
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if task.done():
            task.result()
        self.agent_port = server.servers[0].sockets[0].getsockname()[1]
        # Announced with the instance so Prometheus finds the agent's /metrics through the AM.
        self.lifecycle.endpoints = self.lifecycle.endpoints.model_copy(update={"agent_port": self.agent_port})
        log.info("agent endpoint listening", extra={"port": self.agent_port})
        return server, task


def nodemanager_kill_delay_ms(environ: Dict[str, str]) -> Optional[float]:
    """How long after SIGTERM the NodeManager sends SIGKILL, from its yarn-site.xml (a
    container sees the NodeManager's $HADOOP_CONF_DIR); None when unset or unreadable."""
    value = read_hadoop_conf(environ.get("HADOOP_CONF_DIR"), ("yarn-site.xml",)).get(
        "yarn.nodemanager.sleep-delay-before-sigkill.ms")
    try:
        return float(value) if value is not None else None
    except ValueError:
        log.warning("unreadable yarn.nodemanager.sleep-delay-before-sigkill.ms", extra={"value": value})
        return None


async def _supervise(shutdown: Shutdown, loops) -> None:
    """Runs the loops until the shutdown ends the agent, then lets a drain under way finish."""
    tasks = [asyncio.create_task(coro) for coro in loops]
    await shutdown.ended.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await shutdown.drained()
