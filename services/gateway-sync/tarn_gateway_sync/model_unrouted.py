"""Route a model away before it unloads (issue 16, item 5), pure: which models an instance
still ready stopped listing, what HAProxy still holds for them, and when to say so with
ModelUnrouted. No I/O, no clock.

An instance that stops listing a model in its ready announcement is drained out of that
model's slot backend (model_routes.slot_intent). Until every HAProxy holds nothing for it
there, the pair (address, model) is pending: announced whenever its count changes, and
forgotten once 0 was announced, or when the instance holds the model again or is no longer
ready (an instance drain has its own handshake)."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

from tarn_shared.membership import Member

Pair = Tuple[str, str]  # (address, model)
# One HAProxy's word after a sync: the models it gives a slot (None: none, it routes no model
# here), and the open requests per leaving address of each slot it synced; None: it failed.
HaproxyWord = Optional[Tuple[Optional[Set[str]], Mapping[str, Mapping[str, Optional[int]]]]]


class RouteAways:
    def __init__(self) -> None:
        self._pending: Dict[Pair, Tuple[Member, Optional[int]]] = {}  # -> (member that dropped it, count sent)

    def observe(self, before: Mapping[str, Sequence[str]], routable: Mapping[str, Member]) -> None:
        """``before``: the models each address of the sync's scope held; ``routable``: the
        ready members there now."""
        for address, held in before.items():
            member = routable.get(address)
            now = set(member.models) if member is not None else set()
            for pair in [p for p in self._pending if p[0] == address and (member is None or p[1] in now)]:
                del self._pending[pair]
            if member is not None:
                for model in set(held) - now:
                    self._pending[(address, model)] = (member, None)

    def addresses(self) -> Set[str]:
        return {a for a, _ in self._pending}

    def models_at(self, scope: Optional[Set[str]]) -> Set[str]:
        return {m for a, m in self._pending if scope is None or a in scope}

    def due(self, counts: Mapping[Pair, Optional[int]]) -> List[Tuple[Pair, Member, int]]:
        """The pairs to announce with their count: known, and not the count last announced."""
        due = []
        for pair, (member, sent) in sorted(self._pending.items()):
            count = counts.get(pair)
            if count is not None and count != sent:
                due.append((pair, member, count))
        return due

    def sent(self, pair: Pair, count: int) -> None:
        if pair not in self._pending:
            return
        if count == 0:
            del self._pending[pair]
        else:
            self._pending[pair] = (self._pending[pair][0], count)


def pair_counts(pairs: Set[Pair], words: Sequence[HaproxyWord]) -> Dict[Pair, Optional[int]]:
    """Each pair's open requests summed over every HAProxy (None: some HAProxy does not know
    this round). An HAProxy that gives the model no slot holds nothing for it there."""
    counts: Dict[Pair, Optional[int]] = {}
    for address, model in pairs:
        total: Optional[int] = 0
        for word in words:
            if word is None:
                total = None
                break
            slotted, synced = word
            if slotted is None or model not in slotted:
                continue
            count = synced.get(model, {}).get(address)
            if count is None:
                total = None
                break
            total += count
        counts[(address, model)] = total
    return counts
