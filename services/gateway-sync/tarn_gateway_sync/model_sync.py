"""One HAProxy's per-model routing (model_routes): its layout read on each full sync, the
model map as last applied, and the slot backends synced through the HaproxyGateway (so they
get its drain clocks, applied memory and session counts). A backend with no slot backends
or no map file in this HAProxy is not routed per model here, and costs nothing."""
from __future__ import annotations

import logging
from typing import Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.errors import UnavailableError
from tarn_shared.membership import Member
from tarn_shared.streams import StreamPublisher

from .cold_start import ColdStartReport, DemandGate, Verdict
from .gateways import HaproxyGateway
from .haproxy import HaproxyCommandError
from .model_routes import (EMPTY_SLOT, MapChange, ModelHolders, ModelLayout, assign_slots, find_layout, plan_map,
                           slot_intent)
from .model_unrouted import HaproxyWord, RouteAways, pair_counts
from .plan import RoutingIntent, Target
from .resolver import Resolver
from .routing import ROUTABLE, Fleet
from .sync_metrics import ErrorLog

log = logging.getLogger(__name__)
# model -> (its holders' targets, the addresses a slot's sync looks at)
SlotTargets = Callable[[Set[str]], Awaitable[Dict[str, Tuple[Dict[str, Target], Set[str]]]]]


class ModelRoutes:
    def __init__(self, gateway: HaproxyGateway, errors: ErrorLog, may_write: Callable[[], bool]) -> None:
        self.gateway = gateway
        self._errors = errors
        self._may_write = may_write
        self._layouts: Dict[str, Optional[ModelLayout]] = {}  # by backend; None: not per model here
        self._maps: Dict[str, Dict[str, str]] = {}  # by backend: model -> slot backend, as applied
        self._overflow: Dict[str, Tuple[str, ...]] = {}  # by backend: held models left without a slot

    async def layout(self, backend: str, full: bool) -> Optional[ModelLayout]:
        """Read on a full sync (a reload may have changed it), else remembered."""
        if full or backend not in self._layouts:
            api = self.gateway.api
            names = [line.strip() for line in (await api.command("show backend")).splitlines()
                     if line.strip() and not line.startswith("#")]
            paths = [line.split("(", 1)[1].split(")", 1)[0] for line in (await api.command("show map")).splitlines()
                     if "(" in line and not line.startswith("#")]
            self._layouts[backend] = find_layout(backend, names, paths)
            self._maps.pop(backend, None)
        return self._layouts[backend]

    async def sync(self, backend: str, main: RoutingIntent, holders: ModelHolders, touched: Set[str],
                   scope: Optional[Set[str]], slot_targets: SlotTargets,
                   cold: Sequence[str] = ()) -> Tuple[bool, HaproxyWord]:
        """Slot backends, then the map, made to match; (ok, what this HAProxy says of the
        route-aways: model_unrouted.HaproxyWord)."""
        try:
            layout = await self.layout(backend, scope is None)
            if layout is None:
                return True, (None, {})
            current = await self._current(backend, layout)
        except (HaproxyCommandError, UnavailableError) as exc:
            self._errors("haproxy_models", exc, haproxy=self.gateway.api.address, backend=backend)
            self._layouts.pop(backend, None)
            return False, None
        wanted, overflow = assign_slots(holders.models(), current, layout.slots, cold)
        self._note_overflow(backend, overflow)
        moved = {m for m, s in wanted.items() if current.get(m) != s}
        models = set(wanted) if scope is None else (touched | moved) & set(wanted)
        targets = await slot_targets(models)
        ok, counted = True, {}
        for model in sorted(models):
            holding, slot_scope = targets[model]
            slot = wanted[model]
            ok = await self.gateway.sync(slot, slot_intent(holding, main), None if scope is None else slot_scope) and ok
            counted[model] = self.gateway.open_requests.get(slot, {})
        if scope is None:  # slots no model holds: emptied (a reclaimed slot's leftovers too)
            for slot in sorted(set(layout.slots) - set(wanted.values())):
                ok = await self.gateway.sync(slot, EMPTY_SLOT, None) and ok
        # The map last: a model's entry points at a slot already holding its copies.
        ok = await self._apply_map(backend, layout, current, wanted) and ok
        return ok, (set(wanted), counted) if ok else None

    async def _current(self, backend: str, layout: ModelLayout) -> Dict[str, str]:
        if backend not in self._maps:
            answer = await self.gateway.api.command(f"show map {layout.map_path}")
            entries: Dict[str, str] = {}
            for line in answer.splitlines():
                fields = line.split()
                if len(fields) == 3 and fields[0].startswith("0x"):
                    entries.setdefault(fields[1], fields[2])
            self._maps[backend] = entries
        return self._maps[backend]

    async def _apply_map(self, backend: str, layout: ModelLayout, current: Dict[str, str],
                         wanted: Dict[str, str]) -> bool:
        changes = plan_map(current, wanted)
        if not changes or not self._may_write():
            return True
        try:
            for change in changes:
                await self._change(layout.map_path, change)
                if change.op == "del":
                    current.pop(change.model, None)
                else:
                    current[change.model] = change.slot or ""
                log.info("model map changed", extra={"backend": backend, "model": change.model, "op": change.op,
                                                     "slot": change.slot})
            return True
        except (HaproxyCommandError, UnavailableError) as exc:
            self._maps.pop(backend, None)  # read again next time
            self._errors("haproxy_models", exc, haproxy=self.gateway.api.address, backend=backend)
            return False

    async def _change(self, path: str, change: MapChange) -> None:
        api = self.gateway.api
        if change.op == "del":
            # `del map` removes every entry of the key; a key already gone is not an error.
            answer = await api.command(f"del map {path} {change.model}")
            if answer.strip() and "Key not found" not in answer:
                raise HaproxyCommandError(f"HAProxy at {api.address} refused del map {change.model}: {answer.strip()}")
            return
        await api.execute(f"{change.op} map {path} {change.model} {change.slot}")

    def _note_overflow(self, backend: str, overflow: Tuple[str, ...]) -> None:
        if overflow and overflow != self._overflow.get(backend):
            self._errors("model_slots_exhausted", ValueError(
                f"backend {backend!r} has no free model slot for {', '.join(overflow)}: their requests go to "
                f"every instance; declare more {backend}_model_N backends and reload HAProxy"),
                haproxy=self.gateway.api.address, backend=backend)
        self._overflow[backend] = overflow

    async def clean(self, backend: str) -> bool:
        """The slot backends and the map emptied (the deployment left ``backend``); False
        until this replica, leading, did it."""
        try:
            layout = await self.layout(backend, True)
            if layout is None:
                return True
            current = await self._current(backend, layout)
        except (HaproxyCommandError, UnavailableError) as exc:
            self._errors("haproxy_models", exc, haproxy=self.gateway.api.address, backend=backend)
            return False
        ok = all([await self.gateway.clean(slot) for slot in layout.slots])
        return await self._apply_map(backend, layout, current, {}) and ok and self._may_write()

    def routed_per_model(self, backend: str) -> bool:
        return self._layouts.get(backend) is not None

    def mapped(self, backend: str) -> Dict[str, str]:
        """The model map as last applied (model -> slot backend)."""
        return self._maps.get(backend, {})

    def forget_applied(self) -> None:
        self._layouts.clear()
        self._maps.clear()


class ModelRouting:
    """Every HAProxy's ModelRoutes, and per deployment which instances hold each model and
    which models are being routed away from an instance (announced with ModelUnrouted)."""

    def __init__(self, routes: List[ModelRoutes], publisher: Optional[StreamPublisher] = None,
                 errors: Optional[ErrorLog] = None) -> None:
        self._routes = {id(r.gateway): r for r in routes}
        self._publisher = publisher
        self._errors = errors
        self._holders: Dict[str, ModelHolders] = {}  # by deployment
        self._aways: Dict[str, RouteAways] = {}
        self._words: Dict[str, List[HaproxyWord]] = {}  # by deployment: this sync's, one per HAProxy synced
        self._owners: Dict[str, str] = {}  # backend routed per model here -> its deployment
        self._demands = DemandGate()

    def update(self, deployment: str, routable: Mapping[str, Member], draining: Mapping[str, Member],
               scope: Optional[Set[str]]) -> Set[str]:
        """Before the sync's first await: the models whose slots the sync must look at (a
        leaving instance's, and those being routed away, so their drains are counted)."""
        holders = self._holders.setdefault(deployment, ModelHolders())
        aways = self._aways.setdefault(deployment, RouteAways())
        addresses = holders.addresses() | aways.addresses() | set(routable) if scope is None else scope
        aways.observe({a: holders.models_of(a) for a in addresses}, routable)
        self._words[deployment] = []
        touched = holders.update(routable, scope)
        return touched | aways.models_at(scope) | {m for member in draining.values() for m in member.models}

    def leaving(self, deployment: str) -> Set[str]:
        """Addresses a model is being routed away from: polled like draining ones."""
        aways = self._aways.get(deployment)
        return aways.addresses() if aways else set()

    async def sync(self, gateway: HaproxyGateway, backend: str, deployment: str, main: RoutingIntent,
                   touched: Set[str], scope: Optional[Set[str]], fleet: Fleet, resolver: Resolver,
                   grpc: bool = False, cold: Sequence[str] = ()) -> Tuple[bool, List[Mapping[str, Optional[int]]]]:
        """(ok, the open requests of each synced slot for leaving addresses). ``grpc``:
        ``backend`` is a gRPC backend paired with the deployment's, its slots at the gRPC ports."""
        routes = self._routes.get(id(gateway))
        if routes is None:
            return True, []
        holders = self._holders.setdefault(deployment, ModelHolders())

        async def slot_targets(models: Set[str]):
            found = {}
            for model in models:
                holding = holders.holding(model)
                found[model] = (await resolver.targets(fleet.routes(ROUTABLE, holding), grpc=grpc),
                                holding | (scope or set()))
            return found

        ok, word = await routes.sync(backend, main, holders, touched, scope, slot_targets, cold)
        if routes.routed_per_model(backend):
            self._owners[backend] = deployment
        self._words.setdefault(deployment, []).append(word)
        return ok, list(word[1].values()) if word else []

    async def announce_due(self, record: ev.DeploymentRecord) -> None:
        """After every HAProxy was synced: ModelUnrouted for each route-away whose count changed."""
        name, aways = record.deployment, self._aways.get(record.deployment)
        words = self._words.pop(name, [])
        if aways is None or self._publisher is None or not words:
            return
        counts = pair_counts({(a, m) for a in aways.addresses() for m in aways.models_at({a})}, words)
        for (address, model), member, count in aways.due(counts):
            event = ev.ModelUnrouted(deployment=name, app_id=member.app_id or record.app_id,
                                     instance_id=member.instance_id, seq=member.seq, model=model, open_requests=count)
            try:
                await self._publisher.publish(ev.lifecycle_stream(name), event, retry_for_s=2.0)
            except UnavailableError as exc:
                if self._errors is not None:
                    self._errors("redis", exc, deployment=name, container_id=member.instance_id)
                return
            aways.sent((address, model), count)
            if count == 0:
                log.info("model unrouted", extra={"deployment": name, "container_id": member.instance_id,
                                                  "model": model})

    def knows(self, deployment: str, backend: str, model: str) -> bool:
        """Whether ``model`` is routed per model for ``deployment``: held by an instance, or
        keeping its map entry (and slot) on some HAProxy while it has no copy."""
        holders = self._holders.get(deployment)
        return (holders is not None and model in holders.models()) or any(
            model in r.mapped(backend) for r in self._routes.values())

    async def demanded(self, report: ColdStartReport, now: float) -> Verdict:
        """A request held for ``report.model``: a ModelDemanded for tarn-am, unless refused or
        one went out lately (DemandGate)."""
        verdict = self._demands.judge(report.backend, report.model, self._owners, self.knows, now)
        if verdict.outcome != "published" or self._publisher is None:
            return verdict
        event = ev.ModelDemanded(deployment=verdict.deployment, model=report.model, backend=report.backend)
        try:
            await self._publisher.publish(ev.lifecycle_stream(verdict.deployment), event, retry_for_s=1.0)
        except UnavailableError as exc:
            self._demands.unsent(verdict.deployment, report.model)
            if self._errors is not None:
                self._errors("redis", exc, deployment=verdict.deployment, model=report.model)
            return Verdict("failed", f"could not publish the demand: {exc}", verdict.deployment)
        log.info("model demanded", extra={"deployment": verdict.deployment, "model": report.model,
                                          "backend": report.backend})
        return verdict

    async def clean(self, gateway: HaproxyGateway, backend: str) -> bool:
        self._owners.pop(backend, None)
        routes = self._routes.get(id(gateway))
        return True if routes is None else await routes.clean(backend)

    def forget_applied(self) -> None:
        for routes in self._routes.values():
            routes.forget_applied()
