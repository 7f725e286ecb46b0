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
from .javacompat import fold_case, java_hash_order
from .models import POLICY_TYPE_ACCESS, RangerRoles, ServicePolicies, UnsupportedPolicyFeature
from .resource_matcher import M_DESCENDANT, M_SELF, M_SELF_AND_ALL_DESCENDANTS, ServiceDefHelper
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


class _Outcome:
    __slots__ = ("allowed", "determined", "priority", "policy_id")

    def __init__(self, allowed=False, determined=False, priority=0, policy_id=-1):
        self.allowed = allowed
        self.determined = determined
        self.priority = priority
        self.policy_id = policy_id


class PolicyEngine:
    """Immutable once built; build a new one when policies or roles change."""

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
        self.policy_count = len(compiled)
        self._index = CandidateIndex(self.policies, helper.options)
        bounds = sorted({b for p in compiled for w in p.windows for b in w.boundaries()})
        self.time_boundaries_ms: tuple[int, ...] = tuple(bounds)
        self.recurring = any(w.recurring for p in compiled for w in p.windows)

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
        tokens = {"USER": user}
        scopes = request.resource_element_matching_scopes
        resource = request.resource
        ignore_descendant_deny = request.ignore_descendant_deny
        descendants_match = is_any or request.resource_matching_scope == SELF_OR_DESCENDANTS
        requested = self.all_access_types if is_any else (access,)
        folded = {a: fold_case(a) for a in requested}
        principals = frozenset(["u:" + user] if user is not None else ()).union(
            ["g:" + g for g in groups], ["r:" + r for r in roles])

        audited, audit_determined = self._initial_audit
        result = _Outcome()
        per_access: dict[str, _Outcome] = {}

        for policy in self.candidates(request):
            if policy.windows and not policy.applicable(now_ms):
                continue
            if result.allowed and result.priority > policy.priority:
                result.determined = True  # an allow by a higher priority is final
            may_decide = policy.items.may_decide_for(principals)
            for prm in policy.resources:
                if (result.determined or not may_decide) and audit_determined:
                    break  # this policy can change neither the audit flag nor the access
                match_type = prm.match_type(resource, scopes, tokens)
                if not (match_type == M_SELF or match_type == M_SELF_AND_ALL_DESCENDANTS
                        or (descendants_match and match_type == M_DESCENDANT)):
                    continue
                if not audit_determined and policy.audit_enabled:
                    audited = audit_determined = True
                if not result.determined and may_decide:
                    self._evaluate_items(policy, match_type, requested, folded, user, groups, roles,
                                         is_any, ignore_descendant_deny, per_access, result)
            if result.allowed and not policy.has_deny:
                result.determined = True  # no deny policy can follow at this priority
            if audit_determined and result.determined:
                break

        reason = "" if result.policy_id != -1 else "no policy matched"
        return Decision(result.allowed, audited, result.policy_id, reason)

    @staticmethod
    def _evaluate_items(policy: CompiledPolicy, match_type: int, requested, folded, user, groups, roles,
                        is_any: bool, ignore_descendant_deny: bool, per_access: dict[str, _Outcome],
                        result: _Outcome) -> None:
        """RangerDefaultPolicyEvaluator.evaluatePolicyItems, one access type at a time."""
        priority = policy.priority
        items = policy.items
        for access in requested:
            decided = items.determining_item(user, groups, roles, folded[access])
            if decided is None and policy.deny_all_else:
                decided = False
            one = None
            if decided is False:
                if match_type != M_DESCENDANT or not ignore_descendant_deny:
                    one = _Outcome(False, True, priority, policy.id)
            elif decided is True:
                one = _Outcome(True, False, priority, policy.id)
            if one is None:
                continue
            old = per_access.get(access)
            if old is None:
                per_access[access] = one
            elif old.allowed:
                if not one.allowed:
                    if priority >= old.priority:
                        per_access[access] = one
                elif priority > old.priority:
                    per_access[access] = one
            else:
                if priority >= old.priority and one.allowed and is_any:
                    per_access[access] = one
                elif priority > old.priority:
                    per_access[access] = one
            if is_any:
                if ignore_descendant_deny and one.allowed:
                    break
                if not ignore_descendant_deny and not one.allowed:
                    break
        if is_any and not ignore_descendant_deny:
            composite = _composite_of_groups(per_access, requested)
        else:
            composite = _composite_of_group(per_access, requested)
        if composite is not None:
            _copy(composite, result)


def _composite_of_group(per_access: dict[str, _Outcome], accesses) -> _Outcome | None:
    """deriveAccessResultFromGroup: any allowed access decides; else all denied decides."""
    denied = None
    complete = True
    for access in accesses:
        outcome = per_access.get(access)
        if outcome is None:
            complete = False
        elif outcome.allowed:
            return outcome
        elif denied is None:
            denied = outcome
    return denied if complete else None


def _composite_of_groups(per_access: dict[str, _Outcome], accesses) -> _Outcome | None:
    """getCompositeAccessResult when every access type is its own group (descendant denies count)."""
    complete = True
    first_allow = None
    for access in java_hash_order(accesses):  # iteration order of a HashSet of singleton sets
        outcome = per_access.get(access)
        if outcome is None:
            complete = False
        elif not outcome.allowed:
            return outcome
        elif first_allow is None:
            first_allow = outcome
    if complete and first_allow is not None:
        return first_allow
    return None


def _copy(source: _Outcome, target: _Outcome) -> None:
    target.allowed = source.allowed
    target.determined = source.determined
    target.priority = source.priority
    target.policy_id = source.policy_id
