"""One Ranger policy compiled for evaluation: its resource matchers, items with implied grants
expanded, validity windows, and its place in Ranger's evaluation order."""
from __future__ import annotations

from fractions import Fraction
from math import floor

from .javacompat import fold_case
from .matcher import PolicyResourceMatcher, ServiceDefHelper, UnsupportedPolicyFeature
from .models import RangerPolicy, RangerPolicyItem, RangerServiceDef
from .roles import GROUP_PUBLIC
from .validity import ValidityWindow

USER_CURRENT = "{USER}"


class _Item:
    """A policy item, its implied grants already expanded (RangerDefaultPolicyItemEvaluator)."""
    __slots__ = ("users", "groups", "roles", "any_user", "public", "accesses")

    def __init__(self, item: RangerPolicyItem, implied: list[tuple[str, list[str]]]):
        self.users = frozenset(item.users)
        self.groups = frozenset(item.groups)
        self.roles = frozenset(item.roles)
        self.any_user = USER_CURRENT in self.users
        self.public = GROUP_PUBLIC in self.groups
        accesses = [[a.type, a.is_allowed] for a in item.accesses]
        if accesses:
            # one round of expansion, in the order Java's HashMap hands out the implying types
            for implying, grants in implied:
                source = _find_access(accesses, implying)
                if source is None:
                    continue
                for grant in grants:
                    target = _find_access(accesses, grant)
                    if target is None:
                        accesses.append([grant, source[1]])
                    elif not target[1]:
                        target[1] = source[1]
        self.accesses = frozenset(fold_case(t) for t, allowed in accesses if allowed)

    def matches(self, user: str | None, groups: frozenset[str], roles: frozenset[str], access: str) -> bool:
        if access not in self.accesses:
            return False
        if user is not None and (self.any_user or user in self.users):
            return True
        if self.public or not self.groups.isdisjoint(groups):
            return True
        return bool(roles) and not self.roles.isdisjoint(roles)


def _find_access(accesses: list[list], access_type: str) -> list | None:
    wanted = fold_case(access_type)
    for access in accesses:
        if fold_case(access[0]) == wanted:
            return access
    return None


def _first_match(items: tuple[_Item, ...], exceptions: tuple[_Item, ...], user, groups, roles, access) -> bool:
    for item in items:
        if item.matches(user, groups, roles, access):
            for exception in exceptions:
                if exception.matches(user, groups, roles, access):
                    return False
            return True
    return False


class CompiledPolicy:
    __slots__ = ("id", "name", "priority", "has_deny", "has_allow", "deny_all_else", "audit_enabled",
                 "eval_order", "resources", "windows", "allow", "deny", "allow_exceptions", "deny_exceptions",
                 "index_order", "principals", "any_principal")

    def __init__(self, policy: RangerPolicy, helper: ServiceDefHelper, implied: list[tuple[str, list[str]]],
                 deny_enabled: bool, index_order: int):
        sd = helper.service_def
        self.id = policy.id if policy.id is not None else -1
        self.name = policy.name
        self.index_order = index_order
        self.priority = policy.policy_priority if policy.policy_priority is not None else 0
        self.deny_all_else = policy.is_deny_all_else
        self.has_deny = policy.is_deny_all_else or bool(policy.deny_policy_items)
        self.has_allow = bool(policy.policy_items)
        self.audit_enabled = policy.is_audit_enabled
        condition_types = {c.name for c in sd.policy_conditions}
        for cond in policy.conditions + [c for it in _all_items(policy) for c in it.conditions]:
            if cond.type in condition_types:
                raise UnsupportedPolicyFeature(f"policy {self.id}: custom condition {cond.type!r} is not supported")
        clean = {k: v.model_copy(update={"values": [x for x in v.values if x is not None]}) for k, v in policy.resources.items()}
        self.resources = [PolicyResourceMatcher(helper, clean)]
        for extra in policy.additional_resources:
            self.resources.append(PolicyResourceMatcher(helper, extra))
        self.windows = tuple(ValidityWindow(s) for s in policy.validity_schedules)
        self.allow = tuple(_Item(i, implied) for i in policy.policy_items)
        if deny_enabled:
            self.deny = tuple(_Item(i, implied) for i in policy.deny_policy_items)
            self.allow_exceptions = tuple(_Item(i, implied) for i in policy.allow_exceptions)
            self.deny_exceptions = tuple(_Item(i, implied) for i in policy.deny_exceptions)
        else:
            self.deny = self.allow_exceptions = self.deny_exceptions = ()
        self.eval_order = _eval_order(policy, sd, any(r.needs_dynamic_eval for r in self.resources))
        # who could be matched by any item: lets evaluation skip policies that cannot decide
        items = self.allow + self.deny
        self.any_principal = self.deny_all_else or any(i.any_user or i.public for i in items)
        self.principals = frozenset().union(*(("u:" + u for u in i.users) for i in items),
                                            *(("g:" + g for g in i.groups) for i in items),
                                            *(("r:" + r for r in i.roles) for i in items))

    def may_decide_for(self, principals: frozenset[str]) -> bool:
        return self.any_principal or not self.principals.isdisjoint(principals)

    def sort_key(self) -> tuple:
        # RangerPolicyEvaluator.PolicyEvalOrderComparator; list position breaks remaining ties
        return (-self.priority, 0 if self.has_deny else 1, self.eval_order,
                self.name is not None, self.name or "", self.index_order)

    def applicable(self, now_ms: int) -> bool:
        if not self.windows:
            return True
        return any(w.contains(now_ms) for w in self.windows)

    def determining_item(self, user, groups, roles, access) -> bool | None:
        """True: an allow item decides; False: a deny item decides; None: no item applies."""
        if self.deny and _first_match(self.deny, self.deny_exceptions, user, groups, roles, access):
            return False
        if self.allow and _first_match(self.allow, self.allow_exceptions, user, groups, roles, access):
            return True
        return None


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
