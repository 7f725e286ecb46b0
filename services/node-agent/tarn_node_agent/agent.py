"""The node-agent's run: secrets, staging, tritonserver, readiness, then telemetry,
heartbeats and commands until Triton stops. Each phase acts through one adapter; the
decisions (launch plan, drain, telemetry, layout) are pure functions elsewhere.

The agent never restarts Triton: it reports what happened and the AM decides.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from typing import Dict, List, Optional

import uvicorn

from tarn_shared import events as ev
from tarn_shared.errors import ConfigError, SchemaError, TarnError, UnavailableError
from tarn_shared.streams import REDIS_DOWN, ConsumerConfig, StreamConsumer, StreamPublisher, connect

from .app import create_app
from .drain import DrainState, drain_step
from .errors import SecretsError, StagingError, TritonError
from .hdfs import Hdfs, read_hadoop_conf, webhdfs_urls_from_conf
from .launch import TritonOptions, model_backend, plan_launch
from .lifecycle import Lifecycle
from .metrics import AgentStatus
from .nvml import GpuReader
from .secrets import decode_keystore, map_to_environment, store_password
from .settings import NodeAgentSettings
from .staging import StagedRepository, Stager, use_in_place
from .telemetry import MetricsParseError, Snapshot, model_samples, normalized_load, parse_triton_metrics
from .triton import Health, TritonApi, TritonProcess

log = logging.getLogger(__name__)
PUBLISH_RETRY_S = 30.0
DRAIN_POLL_S = 0.25
READY_BACKOFF_S = (0.1, 2.0)
UNREADY_AFTER_FAILURES = 2
EXIT_CONFIG = 2
EXIT_STAGING = 3
EXIT_TRITON = 4


class NodeAgent:
    def __init__(self, settings: NodeAgentSettings, *, gpu: Optional[GpuReader] = None,
                 environ: Optional[Dict[str, str]] = None) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.status = AgentStatus()
        self.gpu = gpu or GpuReader()
        host = settings.advertise_host or socket.getfqdn()
        self.lifecycle = Lifecycle(settings.deployment, settings.app_id or "", settings.container_id or "",
                                   ev.Endpoints(host=host, http_port=settings.http_port,
                                                grpc_port=settings.grpc_port, metrics_port=settings.metrics_port))
        self.process = TritonProcess()
        local = "127.0.0.1" if settings.triton_bind in ("0.0.0.0", "::", "") else settings.triton_bind
        self.api = TritonApi(local, settings.http_port, settings.metrics_port, timeout_s=settings.probe_timeout_s)
        self.models: List[str] = []
        self.agent_port: Optional[int] = None
        self._redis = None
        self._publisher: Optional[StreamPublisher] = None
        self._stop = asyncio.Event()
        self._exit_code = 0
        self._drain_task: Optional[asyncio.Task] = None
        self._commands_done: Dict[str, ev.CommandAck] = {}
        self._draining_entry: Optional[str] = None
        self._unrouted = asyncio.Event()
        self._terminating = False

    # ------------------------------------------------------------------ run
    async def run(self) -> int:
        s = self.settings
        self._redis = connect(s.redis_url)
        self._publisher = StreamPublisher(self._redis)
        server, server_task = await self._start_http()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_terminate)
        try:
            try:
                secret_env = await asyncio.to_thread(self._read_secrets)
                staged = await asyncio.to_thread(self._stage)
                plan_env = {**self.environ, **s.extra_env(), **secret_env}
                plan = await asyncio.to_thread(self._plan, staged, plan_env)
            except ConfigError as exc:
                return await self._fail_before_start(f"configuration: {exc}", EXIT_CONFIG)
            except (StagingError, SecretsError, UnavailableError, TarnError) as exc:
                return await self._fail_before_start(str(exc), EXIT_STAGING)
            if self._terminating:
                await self._publish_lifecycle(self.lifecycle.stopped([], None, "terminated before start"))
                return 0
            log.info("starting tritonserver", extra={"parallelism": plan.parallelism,
                                                      "model_repository": str(staged.path),
                                                      "secret_env": sorted(secret_env)})
            try:
                self.process.start(plan.argv, plan.env)
            except TritonError as exc:
                return await self._fail_before_start(str(exc), EXIT_TRITON)
            await self._supervise()
            return self._exit_code
        finally:
            server.should_exit = True
            await asyncio.wait([server_task], timeout=5)
            await self.api.close()
            self.gpu.close()
            await self._redis.aclose()

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
        log.info("agent endpoint listening", extra={"port": self.agent_port})
        return server, task

    # ------------------------------------------------------------------ before Triton
    def _hdfs(self, authority: str) -> Hdfs:
        s = self.settings
        url = s.webhdfs_url or webhdfs_urls_from_conf(read_hadoop_conf(self.environ.get("HADOOP_CONF_DIR")),
                                                      authority)
        if not url:
            raise ConfigError("webhdfs_url is not set and $HADOOP_CONF_DIR/hdfs-site.xml names no "
                              "dfs.namenode.http-address")
        return Hdfs.connect(url, auth=s.hdfs_auth, user=s.hdfs_user, authority=authority, environ=self.environ,
                            pool_size=s.staging_parallelism)

    def _read_secrets(self) -> Dict[str, str]:
        if not self.settings.secrets:
            return {}
        location = self.settings.secrets_location
        data = self._hdfs(location.authority).read_bytes(location.hdfs_path)
        mapped = map_to_environment(decode_keystore(data, store_password(self.environ), location.hdfs_path))
        log.info("secrets read", extra={"variables": mapped.names, "ignored_aliases": mapped.ignored_aliases})
        return mapped.values

    def _stage(self) -> StagedRepository:
        location = self.settings.repository
        if location.local_path is not None:
            staged = use_in_place(location.local_path)
        else:
            stager = Stager(self._hdfs(location.authority), self.settings.staging_dir,
                            parallelism=self.settings.staging_parallelism,
                            verify=self.settings.verify_checksums, progress=self.status.staging)
            staged = stager.stage(location.uri, location.hdfs_path)
        return staged

    def _plan(self, staged: StagedRepository, env: Dict[str, str]):
        s = self.settings
        backends: Dict[str, Optional[str]] = {}
        engine_args: Dict[str, str] = {}
        for model in staged.models:
            config = staged.path / model / "config.pbtxt"
            backends[model] = model_backend(config.read_text(errors="replace")) if config.is_file() else None
            engine = staged.path / model / "1" / "model.json"
            if engine.is_file():
                engine_args[model] = engine.read_text()
        options = TritonOptions(
            executable=s.tritonserver, model_repository=staged.path, bind=s.triton_bind, http_port=s.http_port,
            grpc_port=s.grpc_port, metrics_port=s.metrics_port, model_control_mode=s.model_control_mode,
            load_models=s.load_models, exit_timeout_s=s.exit_timeout_s, extra_args=s.triton_args, tp=s.tp,
            pp=s.pp, parallel_backend=s.parallel_backend, mpirun=s.mpirun)
        plan = plan_launch(options, backends, engine_args, env)
        for path, text in plan.rewrites.items():
            path.write_text(text)
        return plan

    async def _fail_before_start(self, reason: str, code: int) -> int:
        log.error("node-agent cannot start Triton", extra={"reason": reason, "container_id": self.settings.container_id,
                                                           "app_id": self.settings.app_id})
        self.status.state = "failed"
        await self._publish_lifecycle(self.lifecycle.stopped([], None, reason))
        return code

    # ------------------------------------------------------------------ with Triton
    async def _supervise(self) -> None:
        tasks = [asyncio.create_task(coro) for coro in (
            self._watch_process(), self._become_ready(), self._heartbeats())]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._drain_task is not None and not self._drain_task.done():
            await asyncio.gather(self._drain_task, return_exceptions=True)

    async def _become_ready(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.ready_timeout_s
        delay = READY_BACKOFF_S[0]
        while True:
            health = await self.api.health()
            if health is Health.READY:
                break
            if loop.time() >= deadline:
                if self.lifecycle.state != ev.InstanceState.UNREADY:
                    await self._publish_lifecycle(self.lifecycle.unready(
                        [], f"tritonserver not ready within {s.ready_timeout_s:g} s ({health.value})"))
                    self.status.state = "unready"
                delay = s.health_interval_s
            await asyncio.sleep(delay)
            delay = min(delay * 2, READY_BACKOFF_S[1])
        await self._announce_ready()
        background = [self._monitor_health(), self._telemetry(), self._commands()]
        await asyncio.gather(*background)

    async def _announce_ready(self) -> None:
        try:
            self.models = await self.api.ready_models()
        except TritonError as exc:
            log.warning("cannot list Triton's models", extra={"error": str(exc)})
        self.status.triton_up = True
        self.status.state = "ready"
        await self._publish_lifecycle(self.lifecycle.ready(self.models))
        log.info("instance ready", extra={"models": self.models, "host": self.lifecycle.endpoints.host})

    async def _monitor_health(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            if self.lifecycle.state in (ev.InstanceState.DRAINING, ev.InstanceState.STOPPED):
                return
            health = await self.api.health()
            if health is Health.READY:
                failures = 0
                if self.lifecycle.state == ev.InstanceState.UNREADY:
                    await self._announce_ready()
                continue
            failures += 1
            self.status.triton_up = False
            if failures >= UNREADY_AFTER_FAILURES and self.lifecycle.state == ev.InstanceState.READY:
                self.status.state = "unready"
                await self._publish_lifecycle(self.lifecycle.unready(self.models, f"tritonserver {health.value}"))

    async def _watch_process(self) -> None:
        code = await self.process.wait()
        if self._stop.is_set() or self._drain_task is not None or self._terminating:
            return
        reason = _exit_reason(code)
        if self.lifecycle.state == ev.InstanceState.STARTING:
            reason += " before it was ready"
        log.error("tritonserver exited", extra={"exit_code": code, "reason": reason})
        self.status.triton_up = False
        self.status.state = "stopped"
        await self._publish_lifecycle(self.lifecycle.stopped(self.models, code, reason))
        self._exit_code = _shell_code(code) or 1
        self._stop.set()

    async def _heartbeats(self) -> None:
        while True:
            try:
                await self._publisher.publish(ev.telemetry_stream(self.settings.deployment),
                                              self.lifecycle.heartbeat(), maxlen=ev.TELEMETRY_MAXLEN)
            except UnavailableError:
                self.status.count_error("redis")
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def _telemetry(self) -> None:
        s = self.settings
        previous: Optional[Snapshot] = None
        try:  # the baseline: requests served before the first interval are not this interval's
            previous = parse_triton_metrics(await self.api.metrics_text())
        except (TritonError, MetricsParseError):
            pass
        previous_at = time.monotonic()
        while True:
            await asyncio.sleep(s.telemetry_interval_s)
            now = time.monotonic()
            interval = max(now - previous_at, 1e-3)
            triton_up = True
            models = []
            try:
                snapshot = parse_triton_metrics(await self.api.metrics_text())
                models = model_samples(previous, snapshot, interval)
                previous, previous_at = snapshot, now
            except (TritonError, MetricsParseError) as exc:
                triton_up = False
                self.status.count_error("triton")
                log.warning("cannot read Triton's metrics", extra={"error": str(exc)})
            gpus, gpu_error = await asyncio.to_thread(self.gpu.read)
            if gpu_error:
                self.status.count_error("gpu")
            load = normalized_load(models, gpus, target_queue_time_us=s.target_queue_time_us,
                                   target_pending_requests=s.target_pending_requests,
                                   target_gpu_utilization_pct=s.target_gpu_utilization_pct)
            self.status.last_load = load
            sample = ev.TelemetrySample(deployment=s.deployment, app_id=s.app_id, instance_id=s.container_id,
                                        interval_s=interval, triton_up=triton_up, load=load, models=models,
                                        gpus=gpus, gpu_error=gpu_error)
            try:
                await self._publisher.publish(ev.telemetry_stream(s.deployment), sample, maxlen=ev.TELEMETRY_MAXLEN)
            except UnavailableError:
                self.status.count_error("redis")

    # ------------------------------------------------------------------ commands
    async def _commands(self) -> None:
        s = self.settings
        consumer = StreamConsumer(
            self._redis, [ev.commands_stream(s.deployment, s.container_id)],
            ConsumerConfig(group="node-agent", consumer=s.container_id, block_ms=500, reclaim_idle_ms=10_000),
            self._on_command)
        await consumer.run(self._stop)

    async def _on_command(self, stream: str, entry_id: str, event: ev.Event) -> None:
        if not isinstance(event, (ev.DrainCommand, ev.LoadModelCommand, ev.UnloadModelCommand)):
            log.warning("ignoring a non-command on the commands stream", extra={"event_type": event.type})
            return
        if event.container_id != self.settings.container_id:
            log.warning("ignoring a command addressed to another container",
                        extra={"command_id": event.command_id, "container_id": event.container_id})
            return
        done = self._commands_done.get(event.command_id)
        if done is not None:  # re-sent because our ack was not seen: acknowledge again
            await self._ack(event, done.status, done.message)
            return
        self.status.commands_handled += 1
        if isinstance(event, ev.DrainCommand):
            if self._drain_task is None:
                self._drain_task = asyncio.create_task(self._drain(event))
            await self._ack(event, ev.AckStatus.ACCEPTED, "draining")
            return
        if self.lifecycle.state in (ev.InstanceState.DRAINING, ev.InstanceState.STOPPED):
            await self._ack(event, ev.AckStatus.FAILED, "instance is draining", remember=True)
            return
        try:
            if isinstance(event, ev.LoadModelCommand):
                await self.api.load_model(event.model, event.config)
            else:
                await self.api.unload_model(event.model)
        except TritonError as exc:
            await self._ack(event, ev.AckStatus.FAILED, str(exc), remember=True)
            return
        await self._ack(event, ev.AckStatus.DONE, "", remember=True)
        await self._announce_ready()  # the model list changed

    async def _ack(self, command: ev.Command, status: ev.AckStatus, message: str, remember: bool = False) -> None:
        ack = ev.CommandAck(deployment=self.settings.deployment, app_id=self.settings.app_id,
                            container_id=self.settings.container_id, command_id=command.command_id,
                            command_type=command.type, status=status, message=message)
        if remember:
            self._commands_done[command.command_id] = ack
        await self._publisher.publish(ev.acks_stream(self.settings.deployment), ack, retry_for_s=PUBLISH_RETRY_S)

    # ------------------------------------------------------------------ drain and termination
    async def _drain(self, command: ev.DrainCommand) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self.status.state = "draining"
        entry = await self._publish_lifecycle(self.lifecycle.draining(self.models, command.command_id,
                                                                     command.timeout_s))
        watcher = asyncio.create_task(self._watch_unrouted(entry or "$"))
        state = DrainState(started_at=loop.time(), timeout_s=command.timeout_s,
                           unrouted_timeout_s=min(s.drain_unrouted_timeout_s, command.timeout_s))
        try:
            while True:
                snapshot = None
                try:
                    snapshot = parse_triton_metrics(await self.api.metrics_text())
                except (TritonError, MetricsParseError):
                    pass
                decision, state = drain_step(state, loop.time(), unrouted_seen=self._unrouted.is_set(),
                                             snapshot=snapshot)
                if decision.stop or self.process.exit_code() is not None:
                    break
                await asyncio.sleep(DRAIN_POLL_S)
        finally:
            watcher.cancel()
        reason = decision.reason if decision.stop else "tritonserver exited while draining"
        log.info("stopping tritonserver", extra={"reason": reason, "command_id": command.command_id})
        code = await self.process.stop(grace_s=s.exit_timeout_s + 10.0)
        self.status.triton_up = False
        self.status.state = "stopped"
        await self._publish_lifecycle(self.lifecycle.stopped(self.models, code, reason))
        ack = ev.AckStatus.DONE
        await self._ack(command, ack, f"{reason}; tritonserver exit code {code}", remember=True)
        self._exit_code = 0
        self._stop.set()

    async def _watch_unrouted(self, after_id: str) -> None:
        """gateway-sync's InstanceUnrouted for this instance, read after our draining entry.
        A plain XREAD: a bounded wait for one reply, not a consumer of the stream."""
        stream = ev.lifecycle_stream(self.settings.deployment)
        last = after_id
        while not self._unrouted.is_set():
            try:
                reply = await self._redis.xread({stream: last}, block=500, count=100)
            except REDIS_DOWN:
                await asyncio.sleep(0.5)
                continue
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    try:
                        event = ev.decode(fields)
                    except SchemaError:
                        continue
                    if isinstance(event, ev.InstanceUnrouted) and event.instance_id == self.settings.container_id:
                        log.info("gateway-sync confirmed the instance unrouted")
                        self._unrouted.set()

    def _on_terminate(self) -> None:
        if self._terminating:
            return
        self._terminating = True
        asyncio.get_running_loop().create_task(self._terminate())

    async def _terminate(self) -> None:
        """SIGTERM from YARN: no time for the handshake (the NodeManager kills soon after);
        announce draining, pass SIGTERM on to Triton, which finishes in-flight requests."""
        if self.process.pid is None or self._stop.is_set():
            return  # still staging: run() notices and stops before starting Triton
        if self._drain_task is not None:
            self.process.signal(signal.SIGTERM)
            return
        await self._publish_lifecycle(self.lifecycle.draining(self.models, None, None))
        code = await self.process.stop(grace_s=self.settings.exit_timeout_s + 10.0)
        self.status.triton_up = False
        self.status.state = "stopped"
        await self._publish_lifecycle(self.lifecycle.stopped(self.models, code, "SIGTERM"))
        self._exit_code = 0
        self._stop.set()

    # ------------------------------------------------------------------ publishing
    async def _publish_lifecycle(self, event: ev.InstanceEvent) -> Optional[str]:
        try:
            return await self._publisher.publish(ev.lifecycle_stream(self.settings.deployment), event,
                                                 retry_for_s=PUBLISH_RETRY_S)
        except UnavailableError as exc:
            # Heartbeats carry the state, so the AM still learns it once Redis is back.
            log.error("lifecycle event not published", extra={"event_type": event.type, "error": str(exc)})
            return None


def _exit_reason(code: Optional[int]) -> str:
    if code is None:
        return "tritonserver state unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"tritonserver killed by {name}"
    return f"tritonserver exited with code {code}"


def _shell_code(code: Optional[int]) -> int:
    if code is None:
        return 1
    return 128 - code if code < 0 else code
