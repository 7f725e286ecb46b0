"""One access question answered against one served Ranger service, audited when asked to.

Fail closed: a service with no policies, or with policies older than the maximum age (freshness.py),
denies every question, and that denial is audited (with its reason) whenever the service is."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from .audit import AuditSink
from .identity import Identity
from .decision_metrics import AuthzMetrics
from .freshness import stale_reason
from .ranger import AccessRequest
from .registry import ServiceState

SCOPE_SELF = "self"
SCOPE_ANY = "any"  # "may the user <action> any model at all" (Ranger's SELF_OR_PREFIX on "")
_ANY_SCOPES = {"model": "SELF_OR_PREFIX"}
# additional_info of a summarised event: the decisions were served from a gateway's cache.
GATEWAY_CACHE_INFO = '{"served_from":"gateway cache"}'


@dataclass(frozen=True)
class CacheHits:
    """Decisions a gateway served from its cache for one (user, action, model, decision, client)."""
    model: str
    action: str
    allowed: bool
    client_ip: Optional[str]
    count: int
    first_s: float
    last_s: float


class UnknownAction(ValueError):
    pass


@dataclass(frozen=True)
class Answer:
    allowed: bool
    audited: bool
    policy_id: int
    reason: str
    service: str
    policy_version: Optional[int]

    def as_json(self, model: str, action: str, user: Optional[str]) -> dict:
        return {"allowed": self.allowed, "audited": self.audited, "policy_id": self.policy_id,
                "reason": self.reason, "service": self.service, "policy_version": self.policy_version,
                "model": model, "action": action, "user": user}


class Decider:
    def __init__(self, metrics: AuthzMetrics, audit: Optional[AuditSink], max_policy_age_s: float = 0.0) -> None:
        self._metrics = metrics
        self._audit = audit
        self._max_age_s = max_policy_age_s

    def decide(self, state: ServiceState, identity: Identity, model: str, action: str, scope: str = SCOPE_SELF,
               client_ip: Optional[str] = None) -> Answer:
        started = time.perf_counter()
        now = time.time()
        answer, audited, closed = self._evaluate(state, identity, model, action, scope, now)
        if audited and self._audit is not None:
            self._record(state, identity, model, action, scope, answer, client_ip, now, reason=closed)
        self._metrics.decided(state.name, answer.allowed, time.perf_counter() - started)
        return answer

    def summarise(self, state: ServiceState, identity: Identity, hits: CacheHits) -> bool:
        """Audits decisions a gateway served from its cache as one summarised event (Ranger's audit
        summarisation: ``event_count``, ``event_dur_ms``), when the deciding policy is audited; the
        result is the gateway's, the policy the one deciding now. True when recorded."""
        answer, audited, closed = self._evaluate(state, identity, hits.model, hits.action, SCOPE_SELF, hits.first_s)
        if not audited or self._audit is None:
            return False
        if answer.allowed != hits.allowed:
            closed = f"served from the gateway cache; authz now decides {'allow' if answer.allowed else 'deny'}"
        answer = Answer(hits.allowed, True, answer.policy_id, answer.reason, answer.service, answer.policy_version)
        self._record(state, identity, hits.model, hits.action, SCOPE_SELF, answer, hits.client_ip, hits.first_s,
                     reason=closed, hits=hits)
        return True

    def _evaluate(self, state: ServiceState, identity: Identity, model: str, action: str, scope: str,
                  now: float) -> tuple:
        """(answer, whether to audit it, the fail-closed reason or None)."""
        if action not in state.access_types:
            raise UnknownAction(f"unknown action {action!r} for service {state.name!r}; "
                                f"one of {', '.join(sorted(state.access_types))}")
        cache = state.cache
        closed = f"no policies loaded for service {state.name!r}: denied" if cache is None or not state.loaded \
            else stale_reason(state.freshness, now, self._max_age_s)
        version = state.bundle.policy_version if state.bundle else None
        if closed is not None:
            return Answer(False, state.audit, -1, closed, state.name, version), state.audit, closed
        groups = identity.groups | state.groups_of(identity.user) if identity.user else identity.groups
        request = AccessRequest(
            resource={"model": model if scope == SCOPE_SELF else ""}, access_type=action, user=identity.user,
            user_groups=groups, resource_element_matching_scopes=_ANY_SCOPES if scope == SCOPE_ANY else {})
        decision = cache.evaluate_at(request, int(now * 1000))
        if decision.policy_id != -1:
            reason = f"{'allowed' if decision.allowed else 'denied'} by policy {decision.policy_id}"
        else:
            reason = "no policy matched: denied"
        answer = Answer(decision.allowed, decision.audited, decision.policy_id, reason, state.name, version)
        return answer, decision.audited and state.audit, None

    def _record(self, state: ServiceState, identity: Identity, model: str, action: str, scope: str, answer: Answer,
                client_ip: Optional[str], now: float, reason: Optional[str] = None,
                hits: Optional[CacheHits] = None) -> None:
        assert self._audit is not None
        self._audit.record(
            service=state.name, deployment=next(iter(sorted(state.deployments)), state.name),
            user=identity.user, model=model if scope == SCOPE_SELF else "*", action=action,
            allowed=answer.allowed, policy_id=answer.policy_id, policy_version=answer.policy_version,
            repo_type=state.bundle.policies.service_def.id or 0 if state.bundle else 0,
            client_ip=client_ip, moment=datetime.fromtimestamp(now, timezone.utc),
            reason=reason, event_count=hits.count if hits else 1,
            event_dur_ms=int(round((hits.last_s - hits.first_s) * 1000)) if hits else 0,
            additional_info=GATEWAY_CACHE_INFO if hits else None)
