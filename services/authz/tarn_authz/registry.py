"""The Ranger services this authz serves, each with its loaded policies, and their refresh.

One `ServiceState` per Ranger service: the default one (``ranger_service``) and every one
named by a deployment record in Redis (``DeploymentRecord.ranger_service``), so a flag given
to `tarn submit` reaches authz without a restart. A service named by no record any more is
dropped (the default never is). Each has its own engine, decision cache and refresh.

A refresh that fails (Ranger unreachable, a malformed or unsupported policy file) keeps the
last good engine, records the error and marks the service degraded (`freshness`); a policy set
that cannot be evaluated is counted as refused. At start, with nothing loaded and Ranger down,
the last good download on disk is used, as old as its file. With nothing at all, the service
denies everything; with policies older than the maximum age, too (decisions.py).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Dict, Mapping, Optional, Protocol

from tarn_shared.errors import TarnError
from tarn_shared.events import DeploymentRecord

from .decision_metrics import AuthzMetrics
from .freshness import Freshness, stale_reason
from .ranger import DecisionCache, PolicyEngine, UnsupportedPolicyFeature
from .ranger_admin import MalformedPolicies
from .sources import DiskCache, PolicyBundle

log = logging.getLogger(__name__)

TRITON_ACCESS_TYPES = frozenset({"infer", "metadata", "list"})


class Source(Protocol):
    service: str

    async def fetch(self, current: Optional[PolicyBundle]) -> Optional[PolicyBundle]: ...

    def accepted(self, now_ms: int) -> None: ...


@dataclass
class ServiceState:
    name: str
    source: Source
    audit: bool = False
    deployments: set = field(default_factory=set)
    bundle: Optional[PolicyBundle] = None
    engine: Optional[PolicyEngine] = None
    cache: Optional[DecisionCache] = None
    access_types: frozenset = TRITON_ACCESS_TYPES
    groups_by_user: Dict[str, frozenset] = field(default_factory=dict)
    freshness: Freshness = field(default_factory=Freshness)
    loaded_at: Optional[float] = None

    @property
    def loaded(self) -> bool:
        return self.engine is not None

    @property
    def policy_count(self) -> int:
        return self.engine.policy_count if self.engine else 0

    @property
    def last_error(self) -> Optional[str]:
        return self.freshness.last_error

    def groups_of(self, user: Optional[str]) -> frozenset:
        return self.groups_by_user.get(user, frozenset()) if user else frozenset()

    def describe(self, now: float, max_age_s: float) -> dict:
        bundle = self.bundle
        return {
            "loaded": self.loaded,
            "origin": bundle.origin if bundle else None,
            "policy_version": bundle.policy_version if bundle else None,
            "role_version": bundle.role_version if bundle else None,
            "user_store_version": bundle.user_store_version if bundle else None,
            "policies": self.policy_count,
            "audit": self.audit,
            "deployments": sorted(self.deployments),
            "loaded_at": self.loaded_at,
            **self.freshness.describe(now, max_age_s),
        }

    def install(self, bundle: PolicyBundle) -> None:
        """Compile and swap in; raises (and keeps the old engine) if the bundle is unusable."""
        self.swap(bundle, self.prepare(bundle))

    def prepare(self, bundle: PolicyBundle) -> tuple:
        """The pure, slow part (compiling the policies): safe to run in a worker thread."""
        declared = bundle.policies.service_name
        if declared and declared != self.name:
            raise MalformedPolicies(f"the policies are for service {declared!r}, not {self.name!r}")
        engine = PolicyEngine(bundle.policies, bundle.roles)
        mapping = bundle.user_store.user_group_mapping if bundle.user_store else {}
        groups_by_user = {user: frozenset(groups) for user, groups in mapping.items()}
        access_types = frozenset(a.name for a in bundle.policies.service_def.access_types)
        return engine, groups_by_user, access_types

    def swap(self, bundle: PolicyBundle, prepared: tuple) -> None:
        engine, self.groups_by_user, self.access_types = prepared
        self.bundle = bundle
        self.engine = engine
        if self.cache is None:
            self.cache = DecisionCache(engine)
        else:
            self.cache.replace_engine(engine)
        self.loaded_at = time.time()


class PolicyRegistry:
    def __init__(self, *, default_service: Optional[str], default_audit: bool,
                 make_source: Callable[[str], Source], disk_cache: Optional[DiskCache],
                 metrics: AuthzMetrics, clock: Callable[[], float] = time.time, max_policy_age_s: float = 0.0) -> None:
        self.default_service = default_service
        self.max_policy_age_s = max_policy_age_s
        self.default_audit = default_audit
        self._make_source = make_source
        self._disk = disk_cache
        self._metrics = metrics
        self._clock = clock
        self.states: Dict[str, ServiceState] = {}
        self._lock = asyncio.Lock()
        if default_service:
            self.ensure(default_service, audit=default_audit)

    # -- which services ----------------------------------------------------------------------
    def ensure(self, service: str, *, audit: bool = False) -> ServiceState:
        state = self.states.get(service)
        if state is None:
            state = ServiceState(name=service, source=self._make_source(service), audit=audit)
            self.states[service] = state
        return state

    def apply_records(self, records: Mapping[str, DeploymentRecord]) -> list[ServiceState]:
        """Serve the services the deployment records name; returns the newly added ones."""
        wanted: Dict[str, set] = {}
        audited: Dict[str, bool] = {}
        for name, record in records.items():
            if record.ranger_service:
                wanted.setdefault(record.ranger_service, set()).add(name)
                audited[record.ranger_service] = audited.get(record.ranger_service, False) or record.ranger_audit
        added = []
        for service, deployments in wanted.items():
            is_new = service not in self.states
            state = self.ensure(service)
            state.deployments = deployments
            state.audit = audited[service] or (service == self.default_service and self.default_audit)
            if is_new:
                added.append(state)
        for service in list(self.states):
            if service not in wanted and service != self.default_service:
                log.info("no deployment names the Ranger service any more; dropping it", extra={"service": service})
                del self.states[service]
            elif service not in wanted:
                self.states[service].deployments = set()
        return added

    def resolve(self, service: Optional[str] = None, deployment: Optional[str] = None) -> Optional[ServiceState]:
        if service:
            return self.states.get(service)
        if deployment:
            return next((s for s in self.states.values() if deployment in s.deployments), None)
        if self.default_service:
            return self.states.get(self.default_service)
        if len(self.states) == 1:
            return next(iter(self.states.values()))
        return None

    def health(self) -> str:
        """unhealthy: some service denies everything (nothing loaded, or policies past the maximum age);
        degraded: some service's latest refresh failed and it decides with older policies; else ok."""
        now = self._clock()
        states = list(self.states.values())
        if not states or any(not s.loaded or stale_reason(s.freshness, now, self.max_policy_age_s) for s in states):
            return "unhealthy"
        return "degraded" if any(s.freshness.degraded for s in states) else "ok"

    def describe(self) -> dict:
        now = self._clock()
        return {name: state.describe(now, self.max_policy_age_s) for name, state in self.states.items()}

    # -- refresh -----------------------------------------------------------------------------
    async def refresh(self, state: ServiceState) -> bool:
        """One refresh of one service; never raises. True when a new bundle was installed."""
        started = time.perf_counter()
        try:
            bundle = await state.source.fetch(state.bundle)
            if bundle is not None:
                state.swap(bundle, await asyncio.to_thread(state.prepare, bundle))
                state.source.accepted(int(self._clock() * 1000))
                if bundle.origin == "ranger" and self._disk is not None:
                    await asyncio.to_thread(self._disk.save, state.name, bundle)
                log.info("policies loaded", extra={"service": state.name, **_versions(bundle)})
            state.freshness.succeeded(self._clock())
            return bundle is not None
        except (TarnError, UnsupportedPolicyFeature, OSError, ValueError) as exc:
            return self._failed(state, exc)
        except Exception as exc:  # a bug in a parser must not kill the loop; report it as such
            return self._failed(state, exc, unexpected=True)
        finally:
            self._metrics.refresh_seconds.observe(time.perf_counter() - started)

    def _failed(self, state: ServiceState, exc: BaseException, unexpected: bool = False) -> bool:
        # a policy set we got and cannot evaluate, as opposed to one we could not get
        refused = isinstance(exc, (UnsupportedPolicyFeature, MalformedPolicies))
        state.freshness.failed(f"{type(exc).__name__}: {exc}", refused, self._clock())
        self._metrics.refresh_errors.labels(state.name).inc()
        if refused:
            self._metrics.refusals.labels(state.name).inc()
        keeping = f"keeping policy version {state.bundle.policy_version}" if state.bundle else "nothing loaded: denying all"
        (log.exception if unexpected else log.error)(
            "policy set refused" if refused else "policy refresh failed",
            extra={"service": state.name, "error": state.last_error, "keeping": keeping,
                   "policy_age_s": state.freshness.age_s(self._clock())})
        if state.engine is None and self._disk is not None:
            self._load_from_disk(state)
        return False

    def _load_from_disk(self, state: ServiceState) -> None:
        try:
            bundle = self._disk.load(state.name) if self._disk else None
            if bundle is not None:
                state.install(bundle)
                state.freshness.confirmed_at = self._disk.saved_at(state.name)  # as old as the download
                log.warning("serving the last good download from disk", extra={"service": state.name,
                                                                                 **_versions(bundle)})
        except (TarnError, UnsupportedPolicyFeature, OSError, ValueError) as exc:
            log.error("the cached download is unusable too", extra={"service": state.name, "error": str(exc)})

    async def refresh_all(self) -> None:
        async with self._lock:
            states = list(self.states.values())
            await asyncio.gather(*(self.refresh(s) for s in states))

    async def run(self, stop: asyncio.Event, interval_s: float,
                  read_records: Optional[Callable[[], Awaitable[Mapping[str, DeploymentRecord]]]] = None,
                  records_interval_s: float = 10.0) -> None:
        """Refresh every interval and follow the deployment records; no error ends it."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + interval_s  # the caller did the first refresh
        next_records = 0.0
        while not stop.is_set():
            now = loop.time()
            if read_records is not None and now >= next_records:
                next_records = now + records_interval_s
                try:
                    added = self.apply_records(await read_records())
                    for state in added:
                        await self.refresh(state)
                except Exception as exc:  # Redis down: keep serving what we have
                    self._metrics.records_errors.inc()
                    log.warning("cannot read deployment records", extra={"error": repr(exc)})
            if now >= next_refresh:
                next_refresh = now + interval_s
                await self.refresh_all()
            wake = min(next_refresh, next_records if read_records is not None else next_refresh)
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.01, wake - loop.time()))
            except asyncio.TimeoutError:
                pass


def _versions(bundle: PolicyBundle) -> dict:
    return {"origin": bundle.origin, "policy_version": bundle.policy_version, "role_version": bundle.role_version,
            "user_store_version": bundle.user_store_version, "policies": len(bundle.policies.policies)}
