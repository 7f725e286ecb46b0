"""A policy's items (allow, deny and their exceptions) with implied grants expanded, as
Ranger's RangerDefaultPolicyItemEvaluator matches them, and who they could ever match."""
from __future__ import annotations

from .javacompat import fold_case
from .models import RangerPolicy, RangerPolicyItem
from .roles import GROUP_PUBLIC

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


class PolicyItems:
    __slots__ = ("allow", "deny", "allow_exceptions", "deny_exceptions", "principals", "any_principal")

    def __init__(self, policy: RangerPolicy, implied: list[tuple[str, list[str]]], deny_enabled: bool):
        self.allow = tuple(_Item(i, implied) for i in policy.policy_items)
        if deny_enabled:
            self.deny = tuple(_Item(i, implied) for i in policy.deny_policy_items)
            self.allow_exceptions = tuple(_Item(i, implied) for i in policy.allow_exceptions)
            self.deny_exceptions = tuple(_Item(i, implied) for i in policy.deny_exceptions)
        else:
            self.deny = self.allow_exceptions = self.deny_exceptions = ()
        # who could be matched by any item: lets evaluation skip policies that cannot decide
        items = self.allow + self.deny
        self.any_principal = policy.is_deny_all_else or any(i.any_user or i.public for i in items)
        self.principals = frozenset().union(*(("u:" + u for u in i.users) for i in items),
                                            *(("g:" + g for g in i.groups) for i in items),
                                            *(("r:" + r for r in i.roles) for i in items))

    def may_decide_for(self, principals: frozenset[str]) -> bool:
        return self.any_principal or not self.principals.isdisjoint(principals)

    def determining_item(self, user, groups, roles, access) -> bool | None:
        """True: an allow item decides; False: a deny item decides; None: no item applies."""
        if self.deny and _first_match(self.deny, self.deny_exceptions, user, groups, roles, access):
            return False
        if self.allow and _first_match(self.allow, self.allow_exceptions, user, groups, roles, access):
            return True
        return None
