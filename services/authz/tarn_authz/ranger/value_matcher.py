"""One policy value compiled to Ranger's matcher for it: equals, startsWith, endsWith or
wildcard (RangerAbstractResourceMatcher.getMatcher), with case folding and tokens."""
from __future__ import annotations

from collections.abc import Mapping

from .javacompat import fold_case, split_wildcard_tokens, wildcard_prefix_match, wildcard_regex
from .matcher_options import MatcherOptions

EQ, STARTS, ENDS, WILD = "eq", "starts", "ends", "wild"


class ValueMatcher:
    """One policy value ('finance', 'fin*', '*-prod', 'm?del*', 'home-{USER}')."""
    __slots__ = ("kind", "literal", "opts", "dynamic", "_regex", "_regex_folded", "_tokens", "_tokens_folded", "_folded")

    def __init__(self, kind: str, literal: str, opts: MatcherOptions):
        self.kind = kind
        self.literal = literal
        self.opts = opts
        self.dynamic = opts.has_token(literal)
        self._folded = fold_case(literal)
        if kind == WILD and not self.dynamic:
            self._regex = wildcard_regex(literal, False)
            self._regex_folded = wildcard_regex(literal, True)
            self._tokens = split_wildcard_tokens(literal)
            self._tokens_folded = split_wildcard_tokens(self._folded)

    @property
    def is_match_any(self) -> bool:
        return self.literal == ""

    def case_insensitive_for(self, value: str) -> bool:
        if not self.opts.ignore_case:
            return False
        return not (self.opts.quoted_case_sensitive and value and value[0] in self.opts.quote_chars)

    def _pattern(self, tokens: Mapping[str, str | None]) -> str:
        return self.opts.replace(self.literal, tokens) if self.dynamic else self.literal

    def is_match(self, value: str, tokens: Mapping[str, str | None]) -> bool:
        ci = self.case_insensitive_for(value)
        kind = self.kind
        if self.dynamic:
            pattern = self._pattern(tokens)
            if ci:
                pattern, value = fold_case(pattern), fold_case(value)
            if kind == WILD:
                return wildcard_regex(pattern, False).fullmatch(value) is not None
        else:
            if ci:
                value = fold_case(value)
                pattern = self._folded
                if kind == WILD:
                    return self._regex_folded.fullmatch(value) is not None
            else:
                pattern = self.literal
                if kind == WILD:
                    return self._regex.fullmatch(value) is not None
        if kind == EQ:
            return value == pattern
        if kind == STARTS:
            return value.startswith(pattern)
        return value.endswith(pattern)

    def is_prefix_match(self, value: str, tokens: Mapping[str, str | None]) -> bool:
        kind = self.kind
        if kind == ENDS:
            return True
        ci = self.case_insensitive_for(value)
        pattern = self._pattern(tokens)
        if ci:
            pattern, value = fold_case(pattern), fold_case(value)
        if kind == WILD:
            return wildcard_prefix_match(value, split_wildcard_tokens(pattern))
        return pattern.startswith(value)


def build_value_matcher(policy_value: str, opts: MatcherOptions) -> ValueMatcher:
    """RangerAbstractResourceMatcher.getMatcher: pick equals / startsWith / endsWith / wildcard."""
    start_idx = end_idx = -1
    need_wildcard = False
    if opts.wildcard:
        for i, c in enumerate(policy_value):
            if c == "?":
                need_wildcard = True
                break
            if c == "*":
                if end_idx == -1 or end_idx == i - 1:
                    end_idx = i
                    if start_idx == -1:
                        start_idx = i
                else:
                    need_wildcard = True
                    break
    if need_wildcard:
        return ValueMatcher(WILD, policy_value, opts)
    if start_idx == -1:
        return ValueMatcher(EQ, policy_value, opts)
    if start_idx == 0:
        return ValueMatcher(ENDS, policy_value[end_idx + 1:], opts)
    if end_idx != len(policy_value) - 1:
        return ValueMatcher(WILD, policy_value, opts)
    return ValueMatcher(STARTS, policy_value[:start_idx], opts)
