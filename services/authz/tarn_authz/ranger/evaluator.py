"""A pure policy decision engine reproducing Apache Ranger's RangerPolicyEngineImpl for access
policies: built once from ServicePolicies (+ RangerRoles), then `evaluate(request, now)`.
No I/O, no clock: the caller passes `now`."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from .candidate_index import CandidateIndex
from .compiled import CompiledPolicy
from .grant_index import ANYONE, GrantIndex, in_order
from .javacompat import fold_case, java_hash_order
from .models import POLICY_TYPE_ACCESS, RangerRoles, ServicePolicies, UnsupportedPolicyFeature
from .outcomes import Outcome, evaluate_items, evaluate_one_access
from .resource_matcher import M_DESCENDANT, M_SELF, M_SELF_AND_ALL_DESCENDANTS, PolicyResourceMatcher, ServiceDefHelper
from .roles import RoleResolver
from .validity import to_epoch_ms

ANY_ACCESS = "_any"
AUDIT_ALL = "audit-all"
AUDIT_NONE = "audit-none"
SELF_OR_DESCENDANTS = "SELF_OR_DESCENDANTS"


@dataclass(frozen=True)
class AccessRequest:
    """Ranger's RangerAccessRequest, reduced to what an access decision reads."""
    resource: dict[str, str]
    access_type: str
    user: str | None
    user_groups: frozenset[str] = frozenset()
    resource_element_matching_scopes: dict[str, str] = field(default_factory=dict)
    resource_matching_scope: str = "SELF"
    user_roles: frozenset[str] = frozenset()
    ignore_descendant_deny: bool = True


class Decision(NamedTuple):
    allowed: bool
    audited: bool
    policy_id: int
    reason: str = ""



class PolicyEngine:
    """Immutable once built; build a new one when policies or roles change."""
    indexed = True  # one-access requests go through the grant index (False: Ranger's scan for all)

    def __init__(self, service_policies: ServicePolicies, roles: RangerRoles | None = None):
        if service_policies.security_zones:
            raise UnsupportedPolicyFeature("security zones are not supported")
        tags = service_policies.tag_policies or {}
        if tags.get("policies"):
            # Tag-based policies need the tag service's tags and Ranger's tag evaluation: not done, so
            # refused rather than silently skipped (skipping a tag deny would allow what Ranger denies).
            raise UnsupportedPolicyFeature(f"tag-based policies are not supported (tag service "
                                           f"{tags.get('serviceName')!r}, {len(tags['policies'])} policies)")
        sd = service_policies.service_def
        self.service_def = sd
        self.service_name = service_policies.service_name
        self.policy_version = service_policies.policy_version if service_policies.policy_version is not None else -1
        helper = ServiceDefHelper(sd)
        self.roles = RoleResolver(roles)
        self.role_version = self.roles.version
        self.all_access_types = tuple(java_hash_order(a.name for a in sd.access_types))
        implied_keys = java_hash_order(a.name for a in sd.access_types if a.implied_grants)
        implied_map: dict[str, list[str]] = {}
        for a in sd.access_types:
            if a.implied_grants:
                implied_map.setdefault(a.name, []).extend(a.implied_grants)
        implied = [(k, implied_map[k]) for k in implied_keys]
        deny_enabled = sd.options.get("enableDenyAndExceptionsInPolicies", "true").lower() == "true"
        mode = service_policies.audit_mode
        if mode == AUDIT_ALL:
            self._initial_audit = (True, True)
        elif mode == AUDIT_NONE:
            self._initial_audit = (False, True)
        elif not service_policies.policies:
            self._initial_audit = (True, True)
        else:
            self._initial_audit = (False, False)
        compiled = [
            CompiledPolicy(p, helper, implied, deny_enabled, i)
            for i, p in enumerate(service_policies.policies)
            if p.is_enabled and (p.policy_type is None or p.policy_type == POLICY_TYPE_ACCESS)
        ]
        compiled.sort(key=CompiledPolicy.sort_key)
        self.policies: tuple[CompiledPolicy, ...] = tuple(compiled)
        self._index = CandidateIndex(self.policies, helper.options)
        self._grants = GrantIndex(self.policies, helper.options)
        bounds = sorted({b for p in compiled for w in p.windows for b in w.boundaries()})
        self.time_boundaries_ms: tuple[int, ...] = tuple(bounds)
        self.recurring = any(w.recurring for p in compiled for w in p.windows)

    @property
    def policy_count(self) -> int:
        return len(self.policies)

    def time_slice(self, now_ms: int) -> object:
        """Equal for two instants only when every validity window answers the same at both."""
        bounds = self.time_boundaries_ms
        at = bisect.bisect_right(bounds, now_ms) if bounds else 0
        if self.recurring:  # a recurrence starts and ends on whole minutes, both ends inclusive
            return at, now_ms // 60_000, now_ms % 60_000 == 0
        return at

    def candidates(self, request: AccessRequest) -> list[CompiledPolicy]:
        if not request.resource:
            return list(self.policies)
        best = None
        scopes = request.resource_element_matching_scopes
        index = self._index
        for name, value in request.resource.items():
            ranks = index.for_key(name, value, scopes.get(name))
            if best is None or len(ranks) < len(best):
                best = ranks
                if not best:
                    return []
        policies = self.policies
        return [policies[r] for r in sorted(best)]

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, request: AccessRequest, now: datetime) -> Decision:
        return self.evaluate_at(request, to_epoch_ms(now))

    def evaluate_at(self, request: AccessRequest, now_ms: int) -> Decision:
        access = request.access_type or ANY_ACCESS
        is_any = access == ANY_ACCESS
        user = request.user
        groups = request.user_groups
        roles = request.user_roles or self.roles.roles_for(user, groups)
        requested = self.all_access_types if is_any else (access,)
        # ANYONE stands for {USER} and public in the grant index; no policy names it as a principal
        principals = frozenset(["u:" + user, ANYONE] if user is not None else (ANYONE,)).union(
            ["g:" + g for g in groups], ["r:" + r for r in roles])
        scan = _Scan(request, requested, roles, principals, is_any)
        if self.indexed and not is_any and request.resource:
            self._decide_indexed(scan, now_ms)
        else:
            self._decide_by_scan(scan, now_ms)
        result = scan.result
        reason = "" if result.policy_id != -1 else "no policy matched"
        return Decision(result.allowed, scan.audited, result.policy_id, reason)

    def _decide_by_scan(self, scan: _Scan, now_ms: int) -> None:
        """Ranger's loop over the candidate policies in evaluation order."""
        audited, audit_determined = self._initial_audit
        result = scan.result
        for policy in self.candidates(scan.request):
            if policy.windows and not policy.applicable(now_ms):
                continue
            if result.allowed and result.priority > policy.priority:
                result.determined = True  # an allow by a higher priority is final
            may_decide = policy.items.may_decide_for(scan.principals)
            for prm in policy.resources:
                if (result.determined or not may_decide) and audit_determined:
                    break  # this policy can change neither the audit flag nor the access
                match_type = scan.match_type(prm)
                if match_type is None:
                    continue
                if not audit_determined and policy.audit_enabled:
                    audited = audit_determined = True
                if not result.determined and may_decide:
                    scan.evaluate_items(policy, match_type)
            if result.allowed and not policy.has_deny:
                result.determined = True  # no deny policy can follow at this priority
            if audit_determined and result.determined:
                break
        scan.audited = audited

    def _decide_indexed(self, scan: _Scan, now_ms: int) -> None:
        """The same loop over only the policies with an item naming this access for one of the
        request's principals (with one access asked, the others never change the outcome; see
        docs/architecture.md), then the audit flag from any audited policy that matches."""
        request = scan.request
        resource, scopes, tokens = request.resource, scan.scopes, scan.tokens
        access = scan.requested[0]
        folded = scan.folded[access]
        deciders, audited_lists = self._grants.lookup(resource, scopes, scan.principals, folded)
        policies = self.policies
        result = scan.result
        audited, audit_determined = self._initial_audit
        for rank in in_order(deciders):
            policy = policies[rank]
            if policy.windows and not policy.applicable(now_ms):
                continue
            if result.allowed and (result.priority > policy.priority or not policy.has_deny):
                break  # an allow by a higher priority is final; without a deny, one of equal priority too
            for prm in policy.resources:
                match_type = prm.match_type(resource, scopes, tokens)
                if not (match_type == M_SELF or match_type == M_SELF_AND_ALL_DESCENDANTS
                        or (scan.descendants_match and match_type == M_DESCENDANT)):
                    continue
                if not audit_determined and policy.audit_enabled:
                    audit_determined = audited = True
                if not result.determined:
                    evaluate_one_access(policy, match_type, access, folded, request.user, request.user_groups,
                                        scan.roles, request.ignore_descendant_deny, scan.per_access, result)
            if result.determined or (result.allowed and not policy.has_deny):
                break  # a deny decided, or no deny policy can follow at this priority
        if not audit_determined:
            audited = any(self._matches(policies[rank], scan, now_ms) for rank in in_order(audited_lists))
        scan.audited = audited

    @staticmethod
    def _matches(policy: CompiledPolicy, scan: _Scan, now_ms: int) -> bool:
        if policy.windows and not policy.applicable(now_ms):
            return False
        return any(scan.match_type(prm) is not None for prm in policy.resources)


class _Scan:
    """One request's evaluation state: what it asks, and the outcome so far."""
    __slots__ = ("request", "requested", "folded", "roles", "principals", "tokens", "scopes", "is_any",
                 "descendants_match", "per_access", "result", "audited")

    def __init__(self, request: AccessRequest, requested: tuple[str, ...], roles: frozenset[str],
                 principals: frozenset[str], is_any: bool):
        self.request = request
        self.requested = requested
        self.folded = {a: fold_case(a) for a in requested}
        self.roles = roles
        self.principals = principals
        self.tokens = {"USER": request.user}
        self.scopes = request.resource_element_matching_scopes
        self.is_any = is_any
        self.descendants_match = is_any or request.resource_matching_scope == SELF_OR_DESCENDANTS
        self.per_access: dict[str, Outcome] = {}
        self.result = Outcome()
        self.audited = False

    def match_type(self, prm: PolicyResourceMatcher) -> int | None:
        """The resource set's match type when it counts for this request, else None."""
        match_type = prm.match_type(self.request.resource, self.scopes, self.tokens)
        if match_type == M_SELF or match_type == M_SELF_AND_ALL_DESCENDANTS \
                or (self.descendants_match and match_type == M_DESCENDANT):
            return match_type
        return None

    def evaluate_items(self, policy: CompiledPolicy, match_type: int) -> None:
        request = self.request
        evaluate_items(policy, match_type, self.requested, self.folded, request.user, request.user_groups,
                       self.roles, self.is_any, request.ignore_descendant_deny, self.per_access, self.result)
