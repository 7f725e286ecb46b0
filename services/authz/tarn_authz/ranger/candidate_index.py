"""Which policies could match a request, looked up by resource value (the role
RangerResourceTrie plays in Ranger): an optimisation only, never a decision."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .compiled import CompiledPolicy
from .javacompat import fold_case
from .matcher_options import MatcherOptions
from .resource_matcher import SCOPE_SELF_OR_PREFIX
from .value_matcher import ENDS, EQ, WILD


class CandidateIndex:
    """Policy ranks (positions in evaluation order) by resource name and value."""
    __slots__ = ("_options", "_by_key", "_exact", "_prefix", "_always", "_prefix_lengths")

    def __init__(self, policies: Sequence[CompiledPolicy], options: Mapping[str, MatcherOptions]):
        self._options = options
        self._exact: dict[str, dict[str, list[int]]] = {}
        self._prefix: dict[str, dict[str, list[int]]] = {}
        self._always: dict[str, list[int]] = {}
        by_key: dict[str, set[int]] = {}
        for rank, policy in enumerate(policies):
            for prm in policy.resources:
                for name, element in prm.elements.items():
                    by_key.setdefault(name, set()).add(rank)
                    exact = self._exact.setdefault(name, {})
                    prefix = self._prefix.setdefault(name, {})
                    always = self._always.setdefault(name, [])
                    if element.is_match_any or element.is_excludes or prm.broken:
                        always.append(rank)
                        continue
                    for m in element.matchers:
                        if m.dynamic or (m.opts.ignore_case and m.opts.quoted_case_sensitive) or m.kind == ENDS:
                            always.append(rank)
                            continue
                        literal = m.literal
                        if m.kind == WILD:  # a value can only match if it starts with the literal head
                            literal = literal[:min(i for i in (literal.find("*"), literal.find("?"), len(literal)) if i >= 0)]
                        key = fold_case(literal) if m.opts.ignore_case else literal
                        (exact if m.kind == EQ else prefix).setdefault(key, []).append(rank)
        self._by_key: dict[str, tuple[int, ...]] = {k: tuple(sorted(v)) for k, v in by_key.items()}
        self._prefix_lengths: dict[str, tuple[int, ...]] = {
            name: tuple(sorted({len(k) for k in prefix})) for name, prefix in self._prefix.items()}

    def for_key(self, name: str, value: str, scope: str | None) -> tuple[int, ...] | set[int]:
        """Ranks of the policies that could match ``value`` for resource ``name``."""
        if scope == SCOPE_SELF_OR_PREFIX or value in ("", "*") or name not in self._exact:
            return self._by_key.get(name, ())
        opts = self._options.get(name)
        probe = fold_case(value) if opts is not None and opts.ignore_case else value
        found = set(self._always.get(name, ()))
        found.update(self._exact[name].get(probe, ()))
        prefix = self._prefix[name]
        if prefix:
            for length in self._prefix_lengths[name]:
                if length > len(probe):
                    break
                found.update(prefix.get(probe[:length], ()))
        return found
