"""Resource matching as Ranger's RangerDefaultResourceMatcher and RangerDefaultPolicyResourceMatcher
do it, compiled once per policy: one matcher per resource element, and the policy-level match
type along the service definition's resource hierarchies."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .matcher_options import MatcherOptions
from .models import RangerPolicyResource, RangerResourceDef, RangerServiceDef, UnsupportedPolicyFeature
from .value_matcher import ValueMatcher, build_value_matcher

# element match types (ResourceElementMatchType)
NONE, SELF, PREFIX = 0, 1, 2
# policy-level match types (RangerPolicyResourceMatcher.MatchType)
M_NONE, M_SELF, M_SELF_AND_ALL_DESCENDANTS, M_DESCENDANT, M_ANCESTOR = 0, 1, 2, 3, 4

SCOPE_SELF = "SELF"
SCOPE_SELF_OR_PREFIX = "SELF_OR_PREFIX"


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
