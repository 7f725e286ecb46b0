"""The gateway-sync loop: consume every deployment's lifecycle stream into a Fleet, and,
while this replica leads, make HAProxy and ZooKeeper match it.

Phases, each with its own error handling, timed into a metric, never killing the loop:
consume (standbys too, so a takeover starts warm), apply (an event's addresses at once),
reconcile (everything: at start, on election, on a new ZooKeeper session, after an
HAProxy restart or reload, after a failed apply, periodically), watch HAProxy.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import defaultdict
from typing import Dict, Optional, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.deployments import read_records
from tarn_shared.errors import SchemaError, TarnError, UnavailableError
from tarn_shared.membership import Member
from tarn_shared.streams import REDIS_DOWN, ConsumerConfig, StreamConsumer, StreamPublisher, connect

from .fleet import Fleet, apply_lifecycle, changed_addresses, due_unrouted, znode_data
from .haproxy import HaproxyCommandError, RuntimeApi, SlotsExhaustedError
from .metrics import Metrics
from .plan import DrainClock, Layout, RoutingIntent, Target, detect_layout, plan_haproxy, plan_znodes
from .settings import GatewaySyncSettings
from .zookeeper import Ensemble, Leadership, parse_acl

log = logging.getLogger(__name__)
RESOLVE_TTL_S = 60.0
RETRY_AFTER_FAILURE_S = 1.0
DRAIN_POLL_S = 1.0
ERROR_LOG_EVERY_S = 30.0


class GatewaySync:
    def __init__(self, settings: GatewaySyncSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.acl = parse_acl(settings.zk_acl)
        self.haproxies = [RuntimeApi(a, settings.haproxy_timeout_s, settings.haproxy_check)
                          for a in settings.haproxy_sockets]
        self.records: Dict[str, ev.DeploymentRecord] = {}
        self.fleets: Dict[str, Fleet] = {}
        self.consumers: Dict[str, StreamConsumer] = {}
        self.ensembles: Dict[str, Ensemble] = {}
        self.leadership: Optional[Leadership] = None
        self.last_reconcile: Optional[dict] = None
        self.haproxy_identity: Dict[str, Optional[str]] = {}
        self._dirty: Dict[str, Set[str]] = defaultdict(set)
        self._draining_watch: Dict[str, Set[str]] = defaultdict(set)
        self._pending_since: Dict[Tuple[str, str], float] = {}
        self._clocks: Dict[Tuple[str, str], DrainClock] = {}
        self._unrouted_sent: Dict[str, int] = {}
        self._resolved: Dict[str, Tuple[str, float]] = {}
        self._logged: Dict[str, float] = {}
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._full_triggers: Set[str] = set()
        self._write_lock = asyncio.Lock()
        self._records_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._tasks: list = []
        self._redis = None
        self._publisher: Optional[StreamPublisher] = None
        metrics.watch_consumers(lambda: {s: c.stats for s, c in self.consumers.items()})

    # ------------------------------------------------------------ life

    async def start(self) -> None:
        self._redis = connect(self.settings.redis_url)
        self._publisher = StreamPublisher(self._redis)
        for loop_fn in (self._elect, self._deployments_loop, self._apply_loop, self._reconcile_loop,
                        self._haproxy_watch_loop):
            self._tasks.append(asyncio.create_task(loop_fn(), name=loop_fn.__name__))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.leadership is not None:
            await asyncio.to_thread(self.leadership.stop)
        for ensemble in self.ensembles.values():
            await ensemble.stop()
        if self._redis is not None:
            await self._redis.aclose()

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None and self.leadership.is_leader

    def request_reconcile(self, trigger: str) -> None:
        self._full_triggers.add(trigger)
        self._full.set()

    def health(self) -> dict:
        return {
            "role": "leader" if self.is_leader else "standby",
            "replica": self.settings.replica_id,
            "last_reconcile": self.last_reconcile,
            "deployments": {name: {"routable": len(f.routable()), "draining": len(f.draining()),
                                   "authoritative": f.authoritative} for name, f in sorted(self.fleets.items())},
            "zookeeper": {hosts: e.client.state for hosts, e in self.ensembles.items()},
            "haproxy": {a: i or "unreachable" for a, i in self.haproxy_identity.items()},
        }

    # ------------------------------------------------------------ election

    async def _elect(self) -> None:
        while not self._stop.is_set():
            try:
                ensemble = await self._ensemble(self.settings.zk_hosts)
            except UnavailableError as exc:
                self._error("zookeeper", exc)
                await self._sleep(2.0)
                continue
            self.leadership = Leadership(ensemble, self.settings.election_path, self.settings.replica_id,
                                         self._on_leadership)
            self.leadership.start()
            return

    def _on_leadership(self, elected: bool) -> None:
        self.metrics.leader.set(1 if elected else 0)
        if elected:
            self.request_reconcile("elected")

    async def _ensemble(self, hosts: str) -> Ensemble:
        ensemble = self.ensembles.get(hosts)
        if ensemble is None:
            ensemble = Ensemble(hosts, session_timeout_s=self.settings.zk_session_timeout_s,
                                auth=self.settings.zk_auth(), sasl_options=self.settings.zk_sasl_options(),
                                acl=self.acl, on_new_session=lambda e: self.request_reconcile("zk_session"),
                                loop=asyncio.get_running_loop())
            await ensemble.start()
            self.ensembles[hosts] = ensemble
        return ensemble

    # ------------------------------------------------------------ consume

    async def _deployments_loop(self) -> None:
        stream = ev.deployments_stream()
        consumer = StreamConsumer(self._redis, [stream], self._config(), self._on_record)
        self.consumers[stream] = consumer
        consumer_task = asyncio.create_task(consumer.run(self._stop))
        try:
            while not self._stop.is_set():
                try:
                    for record in (await read_records(self._redis)).values():
                        await self._add_deployment(record)
                except REDIS_DOWN as exc:
                    self._error("redis", exc)
                except TarnError as exc:
                    self._error("deployment", exc)
                await self._sleep(self.settings.reconcile_interval_s if self.records else 1.0)
        finally:
            consumer_task.cancel()

    def _config(self) -> ConsumerConfig:
        # A group per replica: every replica sees every event. "$": history comes from the replay.
        return ConsumerConfig(group=f"gateway-sync.{self.settings.replica_id}", consumer=self.settings.replica_id,
                              block_ms=1000, count=500, start_id="$")

    async def _on_record(self, stream: str, entry_id: str, event: ev.Event) -> None:
        if isinstance(event, ev.DeploymentRecord):
            await self._add_deployment(event)

    async def _add_deployment(self, record: ev.DeploymentRecord) -> None:
        async with self._records_lock:
            await self._add_deployment_locked(record)

    async def _add_deployment_locked(self, record: ev.DeploymentRecord) -> None:
        name = record.deployment
        if self.settings.deployments and name not in self.settings.deployments:
            return
        known = self.records.get(name)
        if known is not None:
            if _settings_of(known) != _settings_of(record):
                self.records[name] = record
                self.request_reconcile("deployment")
            return
        stream = ev.lifecycle_stream(name)
        consumer = StreamConsumer(self._redis, [stream], self._config(),
                                  lambda s, i, e: self._on_lifecycle(name, i, e))
        await consumer.ensure_groups()
        self.fleets.setdefault(name, Fleet())
        await self._replay(name, stream)
        self.consumers[stream] = consumer
        self._tasks.append(asyncio.create_task(consumer.run(self._stop), name=f"consume-{name}"))
        self.records[name] = record
        log.info("serving deployment", extra={"deployment": name, "app_id": record.app_id,
                                              "zk_path": record.zk_path, "haproxy_backend": record.haproxy_backend})
        self.request_reconcile("deployment")

    async def _replay(self, name: str, stream: str) -> None:
        """Rebuild the fleet from the stream: from the newest snapshot's ``lifecycle_through``
        on (everything before it is in that snapshot)."""
        start, upper = "-", "+"
        while True:
            batch = await self._redis.xrevrange(stream, max=upper, min="-", count=500)
            snapshot = next((e for e in (_decoded(f) for _, f in batch) if isinstance(e, ev.MembershipSnapshot)), None)
            if snapshot is not None:
                start = snapshot.lifecycle_through or "-"
                break
            if len(batch) < 500:
                break
            upper = "(" + _text(batch[-1][0])
        while True:
            batch = await self._redis.xrange(stream, min=start, max="+", count=1000)
            for entry_id, fields in batch:
                event = _decoded(fields)
                if event is not None:
                    self.fleets[name] = apply_lifecycle(self.fleets[name], event, _text(entry_id))
            if len(batch) < 1000:
                return
            start = "(" + _text(batch[-1][0])

    async def _on_lifecycle(self, name: str, entry_id: str, event: ev.Event) -> None:
        if getattr(event, "deployment", name) != name:
            return
        old = self.fleets.get(name, Fleet())
        new = apply_lifecycle(old, event, entry_id)
        if new == old:
            return
        self.fleets[name] = new
        for address in changed_addresses(old, new):
            self._pending_since.setdefault((name, address), event.ts)
            self._dirty[name].add(address)
        self._wake.set()
        if new.authoritative and not old.authoritative:
            self.request_reconcile("snapshot")

    # ------------------------------------------------------------ act

    async def _apply_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=DRAIN_POLL_S)
            except asyncio.TimeoutError:
                for name, addresses in self._draining_watch.items():
                    self._dirty[name] |= addresses
            self._wake.clear()
            dirty, self._dirty = self._dirty, defaultdict(set)
            if not self.is_leader:
                self._pending_since.clear()
                continue
            started = time.perf_counter()
            async with self._write_lock:
                for name, scope in dirty.items():
                    if name in self.records and scope:
                        if not await self._sync(name, scope):
                            self._retry_soon()
            self.metrics.phase_seconds.labels("apply").observe(time.perf_counter() - started)

    async def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._full.wait(), timeout=self.settings.reconcile_interval_s)
                triggers = self._full_triggers or {"requested"}
            except asyncio.TimeoutError:
                triggers = {"periodic"}
            self._full.clear()
            self._full_triggers = set()
            if not self.is_leader:
                continue
            started = time.perf_counter()
            ok = True
            async with self._write_lock:
                for name in list(self.records):
                    try:
                        ok = await self._sync(name, None) and ok
                    except Exception as exc:  # a bug must not end the loop
                        ok = False
                        self._error("internal", exc, deployment=name)
            duration_s = time.perf_counter() - started
            self.metrics.phase_seconds.labels("reconcile").observe(duration_s)
            for trigger in triggers:
                self.metrics.reconciles.labels(trigger).inc()
            self.last_reconcile = {"at": time.time(), "triggers": sorted(triggers), "ok": ok,
                                   "duration_s": round(duration_s, 4), "deployments": len(self.records)}
            if not ok:
                self._retry_soon()

    def _retry_soon(self) -> None:
        asyncio.get_running_loop().call_later(RETRY_AFTER_FAILURE_S, self.request_reconcile, "retry")

    async def _haproxy_watch_loop(self) -> None:
        while not self._stop.is_set():
            for api in self.haproxies:
                try:
                    identity: Optional[str] = await api.identity()
                except UnavailableError:
                    identity = None
                before = self.haproxy_identity.get(api.address, "")
                self.haproxy_identity[api.address] = identity
                if identity is not None and before != "" and before != identity:
                    log.warning("haproxy restarted or reloaded; reconciling", extra={"haproxy": api.address})
                    self.request_reconcile("haproxy_restart")
            await self._sleep(self.settings.haproxy_watch_interval_s)

    async def _sync(self, name: str, scope: Optional[Set[str]]) -> bool:
        """Make every gateway match the fleet for ``scope`` (None: everything). True when all
        of them did; then due instance-unrouted events are announced."""
        record, fleet = self.records[name], self.fleets[name]
        routable, draining, gone_addresses = fleet.routable(), fleet.draining(), fleet.gone()
        gone = {m.endpoints.address: m for m in fleet.view.members.values()
                if m.endpoints and m.endpoints.address in gone_addresses}
        intent = RoutingIntent(desired=await self._targets(routable), draining=await self._targets(draining),
                               gone=await self._targets(gone), authoritative=fleet.authoritative)
        ok = True
        for api in self.haproxies:
            ok = await self._sync_haproxy(api, record.haproxy_backend, intent, scope) and ok
        ok = await self._sync_zookeeper(name, record, fleet, routable, set(draining) | gone_addresses, scope) and ok
        self.metrics.routed.labels(name).set(len(routable))
        if draining:
            self._draining_watch[name] = set(draining)
        else:
            self._draining_watch.pop(name, None)
        if not ok:
            return False
        now = time.time()
        for (dep, address), since in list(self._pending_since.items()):
            if dep == name and (scope is None or address in scope):
                self.metrics.propagation.labels("add" if address in routable else "remove").observe(max(0.0, now - since))
                del self._pending_since[(dep, address)]
        for member in due_unrouted(fleet, scope, self._unrouted_sent).values():
            await self._announce_unrouted(name, record, member)
        return True

    async def _sync_haproxy(self, api: RuntimeApi, backend: str, intent: RoutingIntent,
                            scope: Optional[Set[str]]) -> bool:
        try:
            observed = await api.servers(backend)
            layout = Layout(self.settings.haproxy_layout) if self.settings.haproxy_layout != "auto" \
                else detect_layout(observed, self.settings.haproxy_slot_prefix)
            key = (api.address, backend)
            actions, self._clocks[key] = plan_haproxy(
                layout, intent, observed, now=time.monotonic(), clock=self._clocks.get(key, DrainClock()),
                drain_timeout_s=self.settings.drain_timeout_s, server_prefix=self.settings.haproxy_server_prefix,
                slot_prefix=self.settings.haproxy_slot_prefix, scope=scope)
            if actions and self.is_leader:
                await api.apply(backend, actions)
            return True
        except SlotsExhaustedError as exc:
            self._error("slots_exhausted", exc, haproxy=api.address, backend=backend)
        except HaproxyCommandError as exc:
            self._error("haproxy_command", exc, haproxy=api.address, backend=backend)
        except UnavailableError as exc:
            self._error("haproxy_unavailable", exc, haproxy=api.address, backend=backend)
        return False

    async def _sync_zookeeper(self, name: str, record: ev.DeploymentRecord, fleet: Fleet,
                              routable: Dict[str, Member], leaving: Set[str], scope: Optional[Set[str]]) -> bool:
        try:
            ensemble = await self._ensemble(record.zk_ensemble or self.settings.zk_hosts)
            path = record.zk_path.rstrip("/")
            observed = await ensemble.observe(path, sorted(scope) if scope is not None else None)
            session = ensemble.session_id
            if session is None:
                raise UnavailableError(f"ZooKeeper at {ensemble.hosts} has no session")
            actions = plan_znodes({a: znode_data(name, m) for a, m in routable.items()},
                                  leaving, observed, session_id=session,
                                  authoritative=fleet.authoritative, scope=scope)
            if actions and self.is_leader:
                await ensemble.apply(path, actions)
            return True
        except UnavailableError as exc:
            self._error("zookeeper", exc, deployment=name)
        return False

    async def _announce_unrouted(self, name: str, record: ev.DeploymentRecord, member: Member) -> None:
        assert self._publisher is not None and member.endpoints is not None
        event = ev.InstanceUnrouted(deployment=name, app_id=member.app_id or record.app_id,
                                    instance_id=member.instance_id, seq=member.seq, endpoints=member.endpoints,
                                    models=list(member.models))
        try:
            await self._publisher.publish(ev.lifecycle_stream(name), event, retry_for_s=2.0)
        except UnavailableError as exc:
            self._error("redis", exc, deployment=name, container_id=member.instance_id)
            self._retry_soon()
            return
        self._unrouted_sent[member.instance_id] = member.seq
        log.info("instance unrouted", extra={"deployment": name, "container_id": member.instance_id,
                                             "address": member.endpoints.address})

    async def _targets(self, members: Dict[str, Member]) -> Dict[str, Target]:
        targets = {}
        for address, member in members.items():
            assert member.endpoints is not None
            try:
                ip = await self._resolve(member.endpoints.host)
            except OSError as exc:
                self._error("resolve", exc, address=address)
                continue
            targets[address] = Target(address, ip, member.endpoints.http_port)
        return targets

    async def _resolve(self, host: str) -> str:
        """HAProxy's `set server addr` takes an IP: resolve names here, cached briefly."""
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
            return host
        except OSError:
            pass
        cached = self._resolved.get(host)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        info = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        ip = info[0][4][0]
        self._resolved[host] = (ip, time.monotonic() + RESOLVE_TTL_S)
        return ip

    # ------------------------------------------------------------ helpers

    def _error(self, kind: str, exc: BaseException, **fields) -> None:
        self.metrics.errors.labels(kind).inc()
        # Retries repeat the same failure every second: log it once per ERROR_LOG_EVERY_S.
        message = f"{kind}: {exc}"
        if time.monotonic() - self._logged.get(message, -ERROR_LOG_EVERY_S) >= ERROR_LOG_EVERY_S:
            self._logged[message] = time.monotonic()
            log.error(message, extra={"kind": kind, **fields})

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


def _settings_of(record: ev.DeploymentRecord) -> dict:
    return record.model_dump(exclude={"event_id", "ts"})


def _decoded(fields) -> Optional[ev.Event]:
    try:
        return ev.decode(fields)
    except SchemaError:
        return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
