"""What the loops have to do next: the addresses lifecycle events changed, per deployment
(synced at once, and timed from the event into the propagation metric), the full
reconciles asked for and why, and the draining servers looked at again until they are gone."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Dict, Iterable, Optional, Set, Tuple

RETRY_AFTER_FAILURE_S = 1.0


class PendingWork:
    def __init__(self) -> None:
        self._changed: Dict[str, Set[str]] = defaultdict(set)
        self._changed_at: Dict[Tuple[str, str], float] = {}
        self._draining: Dict[str, Set[str]] = {}
        self._triggers: Set[str] = set()
        self._wake = asyncio.Event()
        self._reconcile = asyncio.Event()

    # ------------------------------------------------------------ asked for

    def changed(self, deployment: str, addresses: Iterable[str], ts: float) -> None:
        """An event at ``ts`` changed these addresses' routing: sync them now."""
        for address in addresses:
            self._changed_at.setdefault((deployment, address), ts)
            self._changed[deployment].add(address)
        self._wake.set()

    def request_reconcile(self, trigger: str) -> None:
        self._triggers.add(trigger)
        self._reconcile.set()

    def retry_soon(self) -> None:
        """A sync failed: a full reconcile shortly, whatever the next event."""
        asyncio.get_running_loop().call_later(RETRY_AFTER_FAILURE_S, self.request_reconcile, "retry")

    def watch_draining(self, deployment: str, addresses: Set[str]) -> None:
        """Draining servers end by a clock (empty, or the drain timeout), not by an event:
        each poll without events looks at them again."""
        if addresses:
            self._draining[deployment] = set(addresses)
        else:
            self._draining.pop(deployment, None)

    # ------------------------------------------------------------ taken

    async def next_changes(self, poll_s: float) -> Dict[str, Set[str]]:
        """The addresses changed since the last call, per deployment; after ``poll_s``
        without an event, the draining ones."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=poll_s)
        except asyncio.TimeoutError:
            for deployment, addresses in self._draining.items():
                self._changed[deployment] |= addresses
        self._wake.clear()
        changed, self._changed = self._changed, defaultdict(set)
        return changed

    async def next_reconcile(self, interval_s: float) -> Set[str]:
        """Why the next full reconcile runs: what asked for one, or "periodic"."""
        try:
            await asyncio.wait_for(self._reconcile.wait(), timeout=interval_s)
            triggers = self._triggers or {"requested"}
        except asyncio.TimeoutError:
            triggers = set(self._triggers) or {"periodic"}  # asked for just as the period ended: say why
        self._reconcile.clear()
        self._triggers = set()
        return triggers

    def settled(self, deployment: str, scope: Optional[Set[str]]) -> Dict[str, float]:
        """The changed addresses (in ``scope``; None: all) that every gateway now routes as
        asked, with the time of the event that changed them; they are no longer pending."""
        done = {address: at for (name, address), at in self._changed_at.items()
                if name == deployment and (scope is None or address in scope)}
        for address in done:
            del self._changed_at[(deployment, address)]
        return done

    def forget_changes(self) -> None:
        """A standby writes nothing, so nothing it saw has propagated through it."""
        self._changed_at.clear()


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
