"""Resource matching as Ranger's RangerDefaultResourceMatcher and RangerDefaultPolicyResourceMatcher
do it, compiled once per policy. Driven by the service definition's resource defs and their
matcherOptions (wildCard, ignoreCase, quotedCaseSensitive, quoteChars, replaceTokens, ...)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .javacompat import fold_case, split_wildcard_tokens, wildcard_prefix_match, wildcard_regex
from .models import RangerPolicyResource, RangerResourceDef, RangerServiceDef

# element match types (ResourceElementMatchType)
NONE, SELF, PREFIX = 0, 1, 2
# policy-level match types (RangerPolicyResourceMatcher.MatchType)
M_NONE, M_SELF, M_SELF_AND_ALL_DESCENDANTS, M_DESCENDANT, M_ANCESTOR = 0, 1, 2, 3, 4

SCOPE_SELF = "SELF"
SCOPE_SELF_OR_PREFIX = "SELF_OR_PREFIX"

DEFAULT_MATCHER = "org.apache.ranger.plugin.resourcematcher.RangerDefaultResourceMatcher"


class UnsupportedPolicyFeature(ValueError):
    """A policy or service definition uses something this evaluator cannot reproduce exactly."""


def _bool_option(options: Mapping[str, str], name: str, default: bool) -> bool:
    value = options.get(name)
    return default if value is None else value.lower() == "true"


def _char_option(options: Mapping[str, str], name: str, default: str) -> str:
    value = options.get(name)
    return value[0] if value else default


class MatcherOptions:
    __slots__ = ("ignore_case", "quoted_case_sensitive", "quote_chars", "wildcard", "replace_tokens",
                 "token_start", "token_end", "token_escape", "token_prefix", "replace_req_expressions")

    def __init__(self, resource_def: RangerResourceDef):
        options = resource_def.matcher_options
        if resource_def.matcher not in (None, "", DEFAULT_MATCHER):
            raise UnsupportedPolicyFeature(f"resource {resource_def.name!r}: matcher {resource_def.matcher} is not supported")
        self.ignore_case = _bool_option(options, "ignoreCase", True)
        self.quoted_case_sensitive = _bool_option(options, "quotedCaseSensitive", False)
        self.quote_chars = options.get("quoteChars", '"')
        self.wildcard = _bool_option(options, "wildCard", True)
        self.replace_tokens = _bool_option(options, "replaceTokens", True)
        self.token_start = _char_option(options, "tokenDelimiterStart", "{")
        self.token_end = _char_option(options, "tokenDelimiterEnd", "}")
        self.token_escape = _char_option(options, "tokenDelimiterEscape", "\\")
        self.token_prefix = options.get("tokenDelimiterPrefix", "")
        if self.replace_tokens and (
            self.token_escape in (self.token_start, self.token_end)
            or any(c in self.token_prefix for c in (self.token_escape, self.token_start, self.token_end))
        ):
            self.replace_tokens = False  # Ranger disables token replacement on inconsistent delimiters
        self.replace_req_expressions = _bool_option(options, "replaceReqExpressions", True)

    def has_token(self, value: str) -> bool:
        return self.replace_tokens and (
            self.token_escape in value or (self.token_start in value and self.token_end in value))

    def replace(self, value: str, tokens: Mapping[str, str | None]) -> str:
        """StringTokenReplacer.replaceTokens: '{USER}' → the user; unknown tokens stay as written."""
        out: list[str] = []
        token: list[str] | None = None
        i = 0
        start, end, esc = self.token_start, self.token_end, self.token_escape
        while i < len(value):
            c = value[i]
            if c == esc:
                i += 1
                if i < len(value):
                    c = value[i]
                    if token is not None:
                        if c not in (esc, end):
                            token.append(esc)
                        token.append(c)
                    else:
                        if c not in (esc, start):
                            out.append(esc)
                        out.append(c)
                else:
                    (token if token is not None else out).append(esc)
                i += 1
                continue
            if token is None:
                if c == start:
                    token = []
                else:
                    out.append(c)
            elif c == end:
                raw = "".join(token)
                replaced = None
                if not self.token_prefix or raw.startswith(self.token_prefix):
                    replaced = tokens.get(raw[len(self.token_prefix):])
                out.append(replaced if replaced is not None else start + raw + end)
                token = None
            else:
                token.append(c)
            i += 1
        if token is not None:
            out.append(start + "".join(token))
        return "".join(out)


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


class ResourceElementMatcher:
    """The matcher of one resource element of a policy (its values, isExcludes)."""
    __slots__ = ("name", "values", "is_excludes", "matchers", "is_match_any", "needs_dynamic_eval", "opts")

    def __init__(self, resource_def: RangerResourceDef, policy_resource: RangerPolicyResource, opts: MatcherOptions):
        self.name = resource_def.name
        self.opts = opts
        self.values = [v for v in policy_resource.values if v]
        self.is_excludes = policy_resource.is_excludes
        matchers: list[ValueMatcher] = []
        for value in self.values:
            if opts.replace_req_expressions and "${{" in value:
                raise UnsupportedPolicyFeature(f"resource {self.name!r}: request expressions ({value!r}) are not supported")
            matcher = build_value_matcher(value, opts)
            if matcher.is_match_any:
                matchers = []
                break
            matchers.append(matcher)
        self.matchers = matchers
        self.is_match_any = not matchers
        self.needs_dynamic_eval = any(m.dynamic for m in matchers)

    def match_type(self, value: str | None, scope: str | None, tokens: Mapping[str, str | None]) -> int:
        all_values_requested = value is None or value == "" or value == "*"
        is_prefix_scope = scope == SCOPE_SELF_OR_PREFIX
        if self.is_match_any or (all_values_requested and not is_prefix_scope):
            result = SELF if self.is_match_any else NONE
        elif value is None:
            result = NONE
        else:
            result = NONE
            for matcher in self.matchers:
                if matcher.is_match(value, tokens):
                    result = SELF
                    break
                if is_prefix_scope and matcher.is_prefix_match(value, tokens):
                    result = PREFIX
        if self.is_excludes and not (all_values_requested and not self.is_match_any):
            result = SELF if result == NONE else NONE
        return result

    def is_match(self, value: str | None, scope: str | None, tokens: Mapping[str, str | None]) -> bool:
        if (scope is None or scope == SCOPE_SELF) and not self.is_excludes:
            # the common case, without the match-type bookkeeping
            if self.is_match_any:
                return True
            if value is None or value == "" or value == "*":
                return False
            for matcher in self.matchers:
                if matcher.is_match(value, tokens):
                    return True
            return False
        mt = self.match_type(value, scope, tokens)
        return mt == SELF or (mt == PREFIX and scope == SCOPE_SELF_OR_PREFIX)


class ServiceDefHelper:
    """Resource hierarchies of a service definition (RangerServiceDefHelper, access policies)."""

    def __init__(self, service_def: RangerServiceDef):
        self.service_def = service_def
        self.resource_defs = {r.name: r for r in service_def.resources}
        self.options = {r.name: MatcherOptions(r) for r in service_def.resources}
        children: dict[str, list[str]] = {r.name: [] for r in service_def.resources}
        for r in service_def.resources:
            if r.parent and r.parent in children:
                children[r.parent].append(r.name)
        sources = [r.name for r in service_def.resources if not r.parent or r.parent not in children]
        hierarchies: list[tuple[str, ...]] = []

        def walk(path: list[str]) -> None:
            node = path[-1]
            if not children[node]:
                hierarchies.append(tuple(path))
                for i in range(1, len(path)):
                    if self.resource_defs[path[i - 1]].is_valid_leaf:
                        hierarchies.append(tuple(path[:i]))
                return
            for child in children[node]:
                if child not in path:
                    walk(path + [child])

        for source in sources:
            walk([source])
        self.hierarchies = list(dict.fromkeys(hierarchies))

    def hierarchies_with(self, keys: Sequence[str] | set[str]) -> list[tuple[str, ...]]:
        return [h for h in self.hierarchies if all(k in h for k in keys)]

    def shortest_hierarchy(self, keys: set[str]) -> tuple[str, ...] | None:
        best = None
        for h in self.hierarchies_with(keys):
            if best is None or len(h) < len(best):
                best = h
        return best


def hierarchy_valid_for(hierarchy: tuple[str, ...] | None, resource: Mapping[str, object]) -> bool:
    """No gaps: once a level is missing, no deeper level may be present."""
    if hierarchy is None:
        return False
    skipped = False
    for name in hierarchy:
        if resource.get(name) is None:
            skipped = True
        elif skipped:
            return False
    return True


class PolicyResourceMatcher:
    """One resource set of a policy (its `resources` or one of `additionalResources`)."""
    __slots__ = ("elements", "keys", "valid_hierarchy", "helper", "broken", "needs_dynamic_eval", "_hierarchies",
                 "_single")

    def __init__(self, helper: ServiceDefHelper, resources: Mapping[str, RangerPolicyResource]):
        self.helper = helper
        self.keys = set(resources)
        self.elements: dict[str, ResourceElementMatcher] = {}
        self.valid_hierarchy: tuple[str, ...] | None = None
        self.broken = True
        if resources:
            hierarchies = helper.hierarchies_with(self.keys)
            valid = [h for h in hierarchies if hierarchy_valid_for(h, resources)]
            if valid:
                self.valid_hierarchy = valid[0] if len(valid) == 1 else None
                for h in hierarchies:
                    for name in h:
                        if name in resources and name not in self.elements:
                            self.elements[name] = ResourceElementMatcher(
                                helper.resource_defs[name], resources[name], helper.options[name])
                self.broken = False
        self.needs_dynamic_eval = any(e.needs_dynamic_eval for e in self.elements.values())
        self._hierarchies: dict[tuple[str, ...], tuple[str, ...] | None] = {}
        # one resource in a one-level hierarchy: a request naming just it needs one element match
        self._single = None
        if not self.broken and len(self.elements) == 1 and self.valid_hierarchy is not None \
                and len(self.valid_hierarchy) == 1 and self.valid_hierarchy[0] in self.elements:
            self._single = (self.valid_hierarchy[0], self.elements[self.valid_hierarchy[0]])

    def _hierarchy_for(self, resource: Mapping[str, str]) -> tuple[str, ...] | None:
        if resource:
            request_keys = set(resource)
            chosen = None
            if self.valid_hierarchy is not None:
                if all(k in self.valid_hierarchy for k in request_keys):
                    chosen = self.valid_hierarchy
            elif self.keys >= request_keys:
                chosen = self.helper.shortest_hierarchy(self.keys)
            elif request_keys >= self.keys:
                chosen = self.helper.shortest_hierarchy(request_keys)
            return chosen if hierarchy_valid_for(chosen, resource) else None
        return self.valid_hierarchy if self.valid_hierarchy is not None else self.helper.shortest_hierarchy(self.keys)

    def match_type(self, resource: Mapping[str, str], scopes: Mapping[str, str], tokens: Mapping[str, str | None]) -> int:
        single = self._single
        if single is not None and len(resource) == 1:
            name, element = single
            value = resource.get(name)
            if value is not None:
                return M_SELF if element.is_match(value, scopes.get(name), tokens) else M_NONE
        if self.broken:
            return M_SELF if not self.keys and not resource else M_NONE
        # the hierarchy depends only on which resource names the request carries
        names = tuple(resource)
        try:
            hierarchy = self._hierarchies[names]
        except KeyError:
            hierarchy = self._hierarchies[names] = self._hierarchy_for(resource)
        if not hierarchy:
            return M_NONE
        elements = self.elements
        last_non_any = -1
        count = 0
        for name in hierarchy:
            element = elements.get(name)
            if element is None:
                break
            if not element.is_match_any:
                last_non_any = count
            count += 1
        result = M_SELF if not resource else M_NONE
        for name in hierarchy:
            element = elements.get(name)
            value = resource.get(name)
            if element is not None:
                if value is not None or element.is_match_any:
                    if element.is_match(value, scopes.get(name), tokens):
                        result = M_SELF
                    else:
                        result = M_NONE
                        break
            else:
                if value is not None:
                    result = M_ANCESTOR
                break
        if result == M_SELF and len(resource) < len(self.keys):
            result = M_SELF_AND_ALL_DESCENDANTS if len(resource) > last_non_any else M_DESCENDANT
        return result
