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
    for access in requested:
        one = _item_outcome(policy, match_type, folded[access], user, groups, roles, ignore_descendant_deny)
        if one is None:
            continue
        _merge(per_access, access, one, is_any)
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


def evaluate_one_access(policy: CompiledPolicy, match_type: int, access: str, folded: str, user, groups, roles,
                        ignore_descendant_deny: bool, per_access: dict[str, Outcome], result: Outcome) -> None:
    """evaluate_items when one access type is asked: the composite is that access's result, which
    `result` already mirrors when this policy's items say nothing."""
    one = _item_outcome(policy, match_type, folded, user, groups, roles, ignore_descendant_deny)
    if one is not None:
        _merge(per_access, access, one, False)
        copy_outcome(per_access[access], result)


def _item_outcome(policy: CompiledPolicy, match_type: int, folded: str, user, groups, roles,
                  ignore_descendant_deny: bool) -> Outcome | None:
    decided = policy.items.determining_item(user, groups, roles, folded)
    if decided is None and policy.deny_all_else:
        decided = False
    if decided is False:
        if match_type != M_DESCENDANT or not ignore_descendant_deny:
            return Outcome(False, True, policy.priority, policy.id)
    elif decided is True:
        return Outcome(True, False, policy.priority, policy.id)
    return None


def _merge(per_access: dict[str, Outcome], access: str, one: Outcome, is_any: bool) -> None:
    """RangerAccessResult's rule for a policy's result for one access type over the one it holds."""
    old = per_access.get(access)
    priority = one.priority
    if old is None:
        per_access[access] = one
    elif old.allowed:
        if (priority >= old.priority) if not one.allowed else (priority > old.priority):
            per_access[access] = one
    elif (priority >= old.priority and one.allowed and is_any) or priority > old.priority:
        per_access[access] = one


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
