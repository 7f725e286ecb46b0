"""A decision cache bound to one PolicyEngine; replacing the engine (new policies or roles) empties it."""
from __future__ import annotations

from datetime import datetime

from .evaluator import AccessRequest, Decision, PolicyEngine
from .validity import to_epoch_ms


class DecisionCache:
    """Decisions keyed by (resource, access, user, groups, scopes, time slice), bound to one
    engine: replacing the engine (policies or roles changed) empties it."""

    def __init__(self, engine: PolicyEngine, max_entries: int = 100_000):
        self.max_entries = max_entries
        self._engine = engine
        self._entries: dict[tuple, Decision] = {}
        self.hits = 0
        self.misses = 0

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    def replace_engine(self, engine: PolicyEngine) -> None:
        self._engine = engine
        self._entries = {}

    def evaluate(self, request: AccessRequest, now: datetime) -> Decision:
        return self.evaluate_at(request, to_epoch_ms(now))

    def evaluate_at(self, request: AccessRequest, now_ms: int) -> Decision:
        engine = self._engine
        time_slice = engine.time_slice(now_ms)
        key = (tuple(sorted(request.resource.items())), request.access_type, request.user, request.user_groups,
               tuple(sorted(request.resource_element_matching_scopes.items())), request.resource_matching_scope,
               request.user_roles, request.ignore_descendant_deny, time_slice)
        entries = self._entries
        found = entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        decision = engine.evaluate_at(request, now_ms)
        if len(entries) >= self.max_entries:
            entries.clear()
        entries[key] = decision
        return decision
