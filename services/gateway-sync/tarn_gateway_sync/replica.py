"""One gateway-sync replica: its parts wired together, their loops started and stopped,
and its health. Every replica consumes every deployment's lifecycle into a Fleet
(discovery); while it leads, the control loop makes HAProxy and ZooKeeper match them."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import List, Optional

from tarn_shared.streams import StreamPublisher, connect

from . import sasl_login
from .admission import Allowlist, Gate
from .cold_start import ColdStartReport, Verdict
from .deployment_sync import DeploymentSync, UnroutedAnnouncer
from .discovery import Discovery
from .gateways import HaproxyGateway, ZookeeperGateway
from .restart_watch import RestartWatch
from .resolver import Resolver
from .haproxy import RuntimeApi
from .model_sync import ModelRoutes, ModelRouting
from .ownership import Claims
from .pending import PendingWork
from .place_store import PlaceStore
from .settings import GatewaySyncSettings
from .sync_loops import ControlLoop, Election
from .sync_metrics import Clock, ErrorLog, Metrics
from .zookeeper import Ensembles, parse_acl


def _login_problem(settings: GatewaySyncSettings, hosts: str) -> Optional[str]:
    problem = sasl_login.check(hosts, settings.zk_sasl_mechanism, settings.zk_acl)
    return problem.message if problem else None


@dataclass
class _Running:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: List[asyncio.Task] = field(default_factory=list)


class GatewaySync:
    def __init__(self, settings: GatewaySyncSettings, metrics: Metrics, clock: Clock = Clock()) -> None:
        self.settings = settings
        self.metrics = metrics
        errors = ErrorLog(metrics.errors, clock)
        self.work = work = PendingWork()
        allowed = Allowlist.of(settings.allowed_backends, settings.allowed_ensembles(), settings.allowed_zk_paths)
        gate = Gate(allowed, settings.zk_hosts, metrics.refused, settings.deployments)
        self._redis = connect(settings.redis_url)
        self.ensembles = Ensembles(session_timeout_s=settings.zk_session_timeout_s, auth=settings.zk_auth(),
                                   sasl_options=settings.zk_sasl_options(), acl=parse_acl(settings.zk_acl),
                                   on_new_session=lambda e: work.request_reconcile("zk_session"),
                                   explain_auth_failure=lambda hosts: _login_problem(settings, hosts))
        self.election = Election(self.ensembles, settings, self._on_leadership, errors)
        self.discovery = Discovery(self._redis, settings.replica_id, work, errors,
                                   poll_s=settings.reconcile_interval_s, gate=gate)
        apis = [RuntimeApi(a, settings.haproxy_timeout_s, settings.haproxy_check) for a in settings.haproxy_sockets]
        is_leader = lambda: self.election.is_leader  # noqa: E731
        self.claims = Claims(settings.zk_hosts,
                             lambda name, place: metrics.claims_refused.labels(name, place.kind).inc())
        publisher = StreamPublisher(self._redis)
        haproxies = [HaproxyGateway(api, settings, errors, is_leader, allowed, clock) for api in apis]
        self.models = ModelRouting([ModelRoutes(h, errors, is_leader) for h in haproxies], publisher, errors)
        sync = DeploymentSync(
            self.discovery, haproxies,
            ZookeeperGateway(self.ensembles, settings.zk_hosts, errors, is_leader, allowed), Resolver(errors, clock),
            work, UnroutedAnnouncer(publisher, errors, work.retry_soon), metrics,
            self.claims, PlaceStore(self._redis, settings.zk_hosts + settings.election_path, errors, gate.admits_place),
            clock, settings.grpc_backend_of(), self.models)
        self.control = ControlLoop(sync, work, is_leader, metrics, errors,
                                   reconcile_interval_s=settings.reconcile_interval_s,
                                   reconcile_min_gap_s=settings.reconcile_min_gap_s, clock=clock)
        self.restarts = RestartWatch(apis, self._on_haproxy_restart, settings.haproxy_watch_interval_s)
        self._running = _Running()
        metrics.watch_consumers(lambda: {s: c.stats for s, c in self.discovery.consumers.items()})

    async def start(self) -> None:
        for name, loop in (("election", self.election.run), ("discovery", self.discovery.run),
                           ("apply", self.control.run_apply), ("reconcile", self.control.run_reconcile),
                           ("haproxy-watch", self.restarts.run)):
            self._running.tasks.append(asyncio.create_task(loop(self._running.stop), name=name))

    async def stop(self) -> None:
        self._running.stop.set()
        for task in self._running.tasks:
            task.cancel()
        await asyncio.gather(*self._running.tasks, return_exceptions=True)
        await self.election.stop()
        await self.ensembles.stop()
        await self._redis.aclose()

    @property
    def is_leader(self) -> bool:
        return self.election.is_leader

    def health(self) -> dict:
        return {
            "role": "leader" if self.is_leader else "standby",
            "replica": self.settings.replica_id,
            "last_reconcile": self.control.last_reconcile,
            "deployments": {name: {"routable": len(f.routable()), "draining": len(f.draining()),
                                   "authoritative": f.authoritative,
                                   "refused": sorted(p.describe() for p in self.claims.refused(name))}
                            for name, f in sorted(self.discovery.fleets.items())},
            "zookeeper": self.ensembles.states(),
            "haproxy": {a: i or "unreachable" for a, i in self.restarts.identity.items()},
        }

    async def cold_start(self, report: ColdStartReport) -> Verdict:
        """What tarn_cold_start.lua reports: counted; a held or waiting request asks tarn-am for a copy."""
        if report.event in ("served", "expired"):
            self.metrics.cold_requests.labels(report.event).inc()
            if report.event == "served":
                self.metrics.cold_wait.observe(report.waited_ms / 1000)
            return Verdict(report.event)
        if report.event == "held":
            self.metrics.cold_requests.labels("held").inc()
        verdict = await self.models.demanded(report, time.time())
        self.metrics.demands.labels(verdict.outcome).inc()
        return verdict

    def _on_haproxy_restart(self) -> None:
        self.control.forget_applied()  # its runtime servers are gone
        self.work.request_reconcile("haproxy_restart")

    def _on_leadership(self, elected: bool) -> None:
        self.metrics.leader.set(1 if elected else 0)
        self.control.forget_applied()  # another replica may have written meanwhile
        if elected:
            self.work.request_reconcile("elected")
