"""Which policies could decide a one-access request, in the manner of Ranger's RangerResourceTrie:
per resource level, exact values in one map and static patterns ('fin*', 'm?del-*', '*-prod')
under the literal head they start with (the trie's wildcard nodes). Each pattern is tried once per
lookup however many policies share it, and the policies behind each entry are kept by who and what
access their items name, so a lookup returns only the policies that can decide for this principal.
An optimisation only, never a decision: every policy the full scan could match and decide with is
in the answer, and so is every audited policy the scan could match."""
from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from .compiled import CompiledPolicy
from .javacompat import fold_case, wildcard_regex
from .matcher_options import MatcherOptions
from .resource_matcher import SCOPE_SELF_OR_PREFIX
from .value_matcher import ENDS, EQ, STARTS, WILD, ValueMatcher

ANYONE = "*"  # the principal of an item for {USER} or for the group public


def grant_keys(policy: CompiledPolicy) -> frozenset[tuple[str, str]]:
    """(folded access, principal) pairs an allow or deny item of the policy decides for
    (principals 'u:', 'g:', 'r:' or ANYONE)."""
    keys: set[tuple[str, str]] = set()
    items = policy.items
    for item in items.allow + items.deny:
        principals = ["u:" + u for u in item.users] + ["g:" + g for g in item.groups] + ["r:" + r for r in item.roles]
        if item.any_user or item.public:
            principals.append(ANYONE)
        keys.update((a, p) for p in principals for a in item.accesses)
    return frozenset(keys)


class _Entry:
    """The policies behind one trie entry: ranks by access then principal, the deny-all-else
    ranks (they decide every access for everyone), and the audited ranks."""
    __slots__ = ("by_access", "deny_all_else", "audited", "_last")

    def __init__(self) -> None:
        self.by_access: dict[str, dict[str, list[int] | tuple[int, ...]]] = {}
        self.deny_all_else: list[int] | tuple[int, ...] = []
        self.audited: list[int] | tuple[int, ...] = []
        self._last = -1

    def add(self, rank: int, policy: CompiledPolicy, grants: frozenset[tuple[str, str]]) -> None:
        if rank == self._last:
            return  # the same policy through a second value or resource set
        self._last = rank
        for access, principal in grants:
            self.by_access.setdefault(access, {}).setdefault(principal, []).append(rank)
        if policy.deny_all_else:
            self.deny_all_else.append(rank)
        if policy.audit_enabled:
            self.audited.append(rank)

    def freeze(self) -> None:
        self.by_access = {a: {p: tuple(r) for p, r in by.items()} for a, by in self.by_access.items()}
        self.deny_all_else = tuple(self.deny_all_else)
        self.audited = tuple(self.audited)


class _Level:
    """One resource name's entries. `always`: what no value narrows (match-any, excludes, values
    with tokens or quoted-case rules); `everything`: every policy naming the resource."""
    __slots__ = ("fold", "exact", "heads", "head_lengths", "always", "everything")

    def __init__(self, opts: MatcherOptions | None):
        self.fold = opts is not None and opts.ignore_case
        self.exact: dict[str, _Entry] = {}
        # literal head -> (kind, pattern) -> (the pattern's full match on the probe, its entry)
        self.heads: dict[str, dict[tuple[str, str], tuple[Callable[[str], object], _Entry]]] = {}
        self.head_lengths: dict[str, tuple[int, ...]] = {}  # by first character: the trie's first level
        self.always = _Entry()
        self.everything = _Entry()

    def entries_for(self, matcher: ValueMatcher) -> _Entry:
        if matcher.dynamic or (matcher.opts.ignore_case and matcher.opts.quoted_case_sensitive):
            return self.always
        literal = matcher.literal
        if matcher.kind == EQ:
            return self.exact.setdefault(fold_case(literal) if self.fold else literal, _Entry())
        # a value can only match if it starts with the literal head (none for an ends-with)
        head = "" if matcher.kind == ENDS else re.split(r"[*?]", literal, maxsplit=1)[0]
        key = fold_case(head) if self.fold else head
        patterns = self.heads.setdefault(key, {})
        found = patterns.get((matcher.kind, literal))
        if found is None:
            found = patterns[(matcher.kind, literal)] = (_full_match(matcher, self.fold), _Entry())
        return found[1]

    def freeze(self) -> None:
        for entry in self._all():
            entry.freeze()
        lengths: dict[str, set[int]] = {}
        for head in self.heads:
            lengths.setdefault(head[:1], set()).add(len(head))
        self.head_lengths = {first: tuple(sorted(n)) for first, n in lengths.items()}

    def _all(self) -> Iterator[_Entry]:
        yield self.always
        yield self.everything
        yield from self.exact.values()
        for patterns in self.heads.values():
            for _, entry in patterns.values():
                yield entry

    def entries(self, value: str, scope: str | None) -> list[_Entry]:
        """The entries whose policies could match `value` (a superset: patterns are tried,
        the policies' other resources and exclusions are not)."""
        if scope == SCOPE_SELF_OR_PREFIX or value in ("", "*"):
            return [self.everything]
        probe = fold_case(value) if self.fold else value
        found = [self.always]
        exact = self.exact.get(probe)
        if exact is not None:
            found.append(exact)
        heads = self.heads
        ends = heads.get("")  # ends-with patterns: no head
        if ends:
            found.extend(entry for matches, entry in ends.values() if matches(probe))
        size = len(probe)
        for length in self.head_lengths.get(probe[:1], ()):
            if length > size:
                break
            patterns = heads.get(probe[:length])
            if patterns:
                found.extend(entry for matches, entry in patterns.values() if matches(probe))
        return found


def _full_match(matcher: ValueMatcher, fold: bool) -> Callable[[str], object]:
    """What ValueMatcher.is_match answers for a static pattern, as one compiled regex on the
    probe (the value, folded when the level ignores case): one C call per pattern."""
    if matcher.kind == WILD:
        return wildcard_regex(matcher.literal, fold).fullmatch
    literal = re.escape(fold_case(matcher.literal) if fold else matcher.literal)
    return re.compile(literal + ".*" if matcher.kind == STARTS else ".*" + literal, re.DOTALL).fullmatch


class GrantIndex:
    """Policy ranks (positions in evaluation order) by resource level, value, principal and access."""
    __slots__ = ("_levels",)

    def __init__(self, policies: Sequence[CompiledPolicy], options: Mapping[str, MatcherOptions]):
        self._levels: dict[str, _Level] = {}
        for rank, policy in enumerate(policies):
            grants = grant_keys(policy)
            for prm in policy.resources:
                for name, element in prm.elements.items():
                    level = self._levels.get(name)
                    if level is None:
                        level = self._levels[name] = _Level(options.get(name))
                    level.everything.add(rank, policy, grants)
                    if element.is_match_any or element.is_excludes:
                        level.always.add(rank, policy, grants)
                        continue
                    for matcher in element.matchers:
                        level.entries_for(matcher).add(rank, policy, grants)
        for level in self._levels.values():
            level.freeze()

    def lookup(self, resource: Mapping[str, str], scopes: Mapping[str, str], principals: frozenset[str],
               access: str) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        """For the resource level that narrows most: the sorted rank lists of the policies that could
        decide `access` for `principals` (ANYONE among them), and those of the audited policies that
        could match."""
        best: tuple[list[tuple[int, ...]], list[tuple[int, ...]]] = ([], [])
        best_size = -1
        for name, value in resource.items():
            level = self._levels.get(name)
            if level is None:
                return [], []  # no policy names this resource: none can match the request
            deciders = []
            audited = []
            for entry in level.entries(value, scopes.get(name)):
                if entry.deny_all_else:
                    deciders.append(entry.deny_all_else)
                by_principal = entry.by_access.get(access)
                if by_principal:
                    for principal in principals:
                        ranks = by_principal.get(principal)
                        if ranks:
                            deciders.append(ranks)
                if entry.audited:
                    audited.append(entry.audited)
            if len(resource) == 1:
                return deciders, audited
            size = sum(len(r) for r in deciders)
            if best_size < 0 or size < best_size:
                best, best_size = (deciders, audited), size
        return best


def in_order(rank_lists: list[tuple[int, ...]]) -> Iterable[int]:
    """The ranks of several sorted lists in order, each once; long ones merged lazily, as
    evaluation usually stops at the first few."""
    if len(rank_lists) == 1:
        return rank_lists[0]
    if sum(len(r) for r in rank_lists) <= 64:
        return sorted(set().union(*rank_lists))
    return _merged(rank_lists)


def _merged(rank_lists: list[tuple[int, ...]]) -> Iterator[int]:
    last = -1
    for rank in heapq.merge(*rank_lists):
        if rank != last:
            last = rank
            yield rank
