"""Ranger's per-access results inside one evaluation (RangerAccessResult and
RangerDefaultPolicyEvaluator.evaluatePolicyItems): how a policy's items change the outcome."""
from __future__ import annotations

from .compiled import CompiledPolicy
from .javacompat import java_hash_order
from .resource_matcher import M_DESCENDANT


class Outcome:
    __slots__ = ("allowed", "determined", "priority", "policy_id")

    def __init__(self, allowed=False, determined=False, priority=0, policy_id=-1):
        self.allowed = allowed
        self.determined = determined
        self.priority = priority
        self.policy_id = policy_id


def evaluate_items(policy: CompiledPolicy, match_type: int, requested, folded, user, groups, roles,
                   is_any: bool, ignore_descendant_deny: bool, per_access: dict[str, Outcome],
                   result: Outcome) -> None:
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
                one = Outcome(False, True, priority, policy.id)
        elif decided is True:
            one = Outcome(True, False, priority, policy.id)
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
        composite = composite_of_groups(per_access, requested)
    else:
        composite = composite_of_group(per_access, requested)
    if composite is not None:
        copy_outcome(composite, result)


def composite_of_group(per_access: dict[str, Outcome], accesses) -> Outcome | None:
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


def composite_of_groups(per_access: dict[str, Outcome], accesses) -> Outcome | None:
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


def copy_outcome(source: Outcome, target: Outcome) -> None:
    target.allowed = source.allowed
    target.determined = source.determined
    target.priority = source.priority
    target.policy_id = source.policy_id
