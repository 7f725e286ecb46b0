"""One Ranger policy compiled for evaluation: its resource matchers, items with implied grants
expanded, validity windows, and its place in Ranger's evaluation order."""
from __future__ import annotations

from fractions import Fraction
from math import floor

from .models import RangerPolicy, RangerPolicyItem, RangerServiceDef, UnsupportedPolicyFeature
from .policy_items import USER_CURRENT, PolicyItems
from .resource_matcher import PolicyResourceMatcher, ServiceDefHelper
from .roles import GROUP_PUBLIC
from .validity import ValidityWindow


class CompiledPolicy:
    """Where the policy applies (resource matchers, validity windows), whom it grants or denies
    (its items), and what orders it among the others."""
    __slots__ = ("id", "name", "priority", "has_deny", "deny_all_else", "audit_enabled", "eval_order",
                 "index_order", "resources", "windows", "items")

    def __init__(self, policy: RangerPolicy, helper: ServiceDefHelper, implied: list[tuple[str, list[str]]],
                 deny_enabled: bool, index_order: int):
        sd = helper.service_def
        self.id = policy.id if policy.id is not None else -1
        self.name = policy.name
        self.index_order = index_order
        self.priority = policy.policy_priority if policy.policy_priority is not None else 0
        self.deny_all_else = policy.is_deny_all_else
        self.has_deny = policy.is_deny_all_else or bool(policy.deny_policy_items)
        self.audit_enabled = policy.is_audit_enabled
        condition_types = {c.name for c in sd.policy_conditions}
        for cond in policy.conditions + [c for it in _all_items(policy) for c in it.conditions]:
            if cond.type in condition_types:
                raise UnsupportedPolicyFeature(f"policy {self.id}: custom condition {cond.type!r} is not supported")
        clean = {k: v.model_copy(update={"values": [x for x in v.values if x is not None]}) for k, v in policy.resources.items()}
        self.resources = [PolicyResourceMatcher(helper, clean)]
        for extra in policy.additional_resources:
            self.resources.append(PolicyResourceMatcher(helper, extra))
        self.windows = tuple(ValidityWindow(s, f"policy {self.id} validity schedule {i}")
                             for i, s in enumerate(policy.validity_schedules))
        self.items = PolicyItems(policy, implied, deny_enabled)
        self.eval_order = _eval_order(policy, sd, any(r.needs_dynamic_eval for r in self.resources))

    def sort_key(self) -> tuple:
        # RangerPolicyEvaluator.PolicyEvalOrderComparator; list position breaks remaining ties
        return (-self.priority, 0 if self.has_deny else 1, self.eval_order,
                self.name is not None, self.name or "", self.index_order)

    def applicable(self, now_ms: int) -> bool:
        if not self.windows:
            return True
        return any(w.contains(now_ms) for w in self.windows)


def _all_items(policy: RangerPolicy) -> list[RangerPolicyItem]:
    return policy.policy_items + policy.deny_policy_items + policy.allow_exceptions + policy.deny_exceptions


def _eval_order(policy: RangerPolicy, sd: RangerServiceDef, needs_dynamic_eval: bool) -> int:
    """RangerOptimizedPolicyEvaluator.computeEvalOrder: cheaper, broader policies first."""
    order = 10000
    resource_names = {r.name for r in sd.resources}
    discount = 0
    for name, resource in policy.resources.items():
        values = [v for v in resource.values if v is not None]  # Ranger scrubs nulls first
        if not values or name not in resource_names:
            continue
        star = question = match_any = False
        for value in values:
            if value == "" or value == "*":
                match_any = True
                break
            if "*" in value:
                star = True
            elif "?" in value:
                question = True
        if match_any:
            discount += 25
        else:
            if star:
                discount += 10
            elif question:
                discount += 5
            if resource.is_excludes:
                discount += 5
            if resource.is_recursive:
                discount += 5
    if needs_dynamic_eval:
        order += 20
    order -= min(100, discount)
    users: set[str] = set()
    groups: set[str] = set()
    perms: set[str] = set()
    for item in _all_items(policy):
        users.update(item.users)
        groups.update(item.groups)
        perms.update(a.type for a in item.accesses if a.is_allowed)
    has_public = policy.is_deny_all_else or any(g.lower() == GROUP_PUBLIC for g in groups)
    has_current_user = any(u.lower() == USER_CURRENT.lower() for u in users)
    if has_public or has_current_user:
        order -= 25
    else:
        order -= min(len(groups) + len(users), 25)
    if sd.access_types:
        order -= floor(Fraction(25 * len(perms), len(sd.access_types)) + Fraction(1, 2))
    order -= 25  # no custom conditions: the full discount
    return order
