"""Consolidation in model placement: a calm fleet empties one instance make-before-break and
offers it for release. Invariants over random fleets run round after round (hypothesis), and examples."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tarn_am.model_placement import (CALM_ROUNDS, Consolidation, FleetBounds, InstanceMemory, ModelDemand, Move,
                                     decide)

GIB = 1 << 30
NAMES = [f"m{k}" for k in range(6)]


def applied(instances, placement, size, new_capacity):
    """The fleet as the agents report it a round later: loads held (still loading), unloads gone,
    memory measured, released instances gone, requested ones started empty."""
    by_id = {i.instance_id: i for i in instances}
    released = set(placement.release[:max(0, len(instances) - placement.instance_count)])
    out = []
    for i in instances:
        if i.instance_id in released:
            continue
        gone = {m.model for m in placement.unloads if m.instance_id == i.instance_id}
        new = {m.model for m in placement.loads if m.instance_id == i.instance_id}
        models = (i.models - gone) | new
        out.append(InstanceMemory(i.instance_id, i.node, i.capacity_bytes, sum(size[m] for m in models),
                                  frozenset(models), frozenset(), {m: size[m] for m in models}, frozenset(new)))
    for k in range(placement.instance_count - len(out)):
        out.append(InstanceMemory(f"new{len(by_id) + k}", f"new{len(by_id) + k}", new_capacity, 0))
    return out


@st.composite
def calm_fleets(draw):
    size = {name: draw(st.integers(1, 8)) * GIB for name in NAMES}
    models = [ModelDemand(name, size[name], draw(st.integers(0, 3)))
              for name in draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1, max_size=5))]
    instances = []
    for k in range(draw(st.integers(1, 6))):
        capacity = draw(st.integers(8, 24)) * GIB
        held, used = set(), 0
        for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4)):
            if used + size[name] <= capacity:
                held.add(name)
                used += size[name]
        instances.append(InstanceMemory(f"i{k}", f"n{draw(st.integers(0, 3))}", capacity, used, frozenset(held),
                                        frozenset(), {m: size[m] for m in held}))
    low = draw(st.integers(0, 2))
    high = max(low + draw(st.integers(1, 6)), len(instances))  # a fleet over its max shrinks: not a move
    return models, instances, FleetBounds(low, high, 16 * GIB), size


def rounds(fleet, count=80):
    """(instances before, placement) of each round, the fleet applied between them."""
    models, instances, bounds, size = fleet
    state = Consolidation()
    for _ in range(count):
        placement = decide(models, instances, bounds, state)
        yield instances, placement
        state = placement.consolidation
        instances = applied(instances, placement, size, bounds.new_instance_capacity_bytes)


def serving(instances, model):
    return sum(model in i.models and model not in i.loading for i in instances)


@settings(max_examples=150, deadline=None)
@given(calm_fleets())
def test_a_models_serving_copies_never_drop_below_what_it_wants_or_had(fleet):
    models, _, bounds, size = fleet
    for before, placement in rounds(fleet):
        after = applied(before, placement, size, bounds.new_instance_capacity_bytes)
        for m in models:
            kept = sum(m.name in i.models and m.name not in i.loading for i in after)  # a load serves next round
            assert kept >= min(m.copies, serving(before, m.name)), (m, placement)


@settings(max_examples=150, deadline=None)
@given(calm_fleets())
def test_moves_never_take_an_instance_over_capacity_nor_give_it_a_second_copy(fleet):
    size = fleet[3]
    for before, placement in rounds(fleet):
        by_id = {i.instance_id: i for i in before}
        assert len(set(placement.loads)) == len(placement.loads)
        added = {}
        for move in placement.loads:
            assert move.model not in by_id[move.instance_id].models
            added[move.instance_id] = added.get(move.instance_id, 0) + size[move.model]
        for k, extra in added.items():
            assert by_id[k].used_bytes + extra <= by_id[k].capacity_bytes
        for move in placement.unloads:
            assert move.model in by_id[move.instance_id].models
        for k in placement.release:  # only an instance the round's moves leave empty is offered
            left = by_id[k].models - {m.model for m in placement.unloads if m.instance_id == k}
            assert not left and not any(m.instance_id == k for m in placement.loads)


@settings(max_examples=150, deadline=None)
@given(calm_fleets())
def test_repeated_rounds_on_the_applied_fleet_stop_moving(fleet):
    history = list(rounds(fleet, 120))
    quiet = history[-(2 * CALM_ROUNDS + 2):]  # long enough for another consolidation to start
    for instances, placement in quiet:
        assert (placement.loads, placement.unloads, placement.release) == ((), (), ()), placement
        assert placement.instance_count == len(instances)


# ---------------------------------------------------------------- examples

def instance(name, node, models, capacity_gib=16, loading=()):
    used = sum(SIZE[m] for m in models)
    return InstanceMemory(name, node, capacity_gib * GIB, used, frozenset(models), frozenset(),
                          {m: SIZE[m] for m in models}, frozenset(loading))


SIZE = {"bert": 2 * GIB, "resnet": 3 * GIB, "llm": 10 * GIB, "t5": 4 * GIB}
BOUNDS = FleetBounds(1, 4, 16 * GIB)
ONE_EACH = [ModelDemand(name, size, 1) for name, size in SIZE.items()]


def calm(models, fleet, bounds=BOUNDS):
    """The state after CALM_ROUNDS - 1 rounds with nothing to move, and the round after them."""
    state = Consolidation()
    for _ in range(CALM_ROUNDS - 1):
        placement = decide(models, fleet, bounds, state)
        assert (placement.loads, placement.unloads) == ((), ())
        state = placement.consolidation
    return decide(models, fleet, bounds, state)


def test_a_calm_fleet_moves_its_emptiest_instances_copies_only_after_calm_rounds():
    fleet = [instance("a", "n1", ["llm"]), instance("b", "n2", ["bert", "t5"]), instance("c", "n3", ["resnet"])]
    placement = calm(ONE_EACH, fleet)
    assert placement.consolidation.emptying == "c"  # 3 GiB held: the emptiest
    assert len(placement.loads) == 1 and placement.loads[0].model == "resnet"
    assert placement.unloads == ()  # make before break: the copy on c still serves
    assert any("emptying c" in r for r in placement.reasons)


def test_a_copy_leaves_the_emptied_instance_once_its_replacement_is_ready_then_it_is_released():
    fleet = [instance("a", "n1", ["llm", "resnet"], loading=["resnet"]), instance("b", "n2", ["bert", "t5"]),
             instance("c", "n3", ["resnet"])]
    state = Consolidation("c")
    loading = decide(ONE_EACH, fleet, BOUNDS, state)
    assert (loading.loads, loading.unloads, loading.release) == ((), (), ())  # the replacement still loads
    fleet[0] = instance("a", "n1", ["llm", "resnet"])
    ready = decide(ONE_EACH, fleet, BOUNDS, loading.consolidation)
    assert ready.unloads == (Move("c", "resnet"),)
    assert ready.release == ("c",) and ready.instance_count == 2


def test_no_instance_is_emptied_when_the_others_would_run_too_full():
    fleet = [instance("a", "n1", ["llm"]), instance("b", "n2", ["t5", "bert"])]
    models = [ModelDemand(name, SIZE[name], 1) for name in ("llm", "t5", "bert")]
    placement = calm(models, fleet)  # b's copies fit on a exactly, but a would be full: no room to scale up
    assert placement.consolidation.emptying is None
    assert (placement.loads, placement.unloads) == ((), ())


def test_no_instance_is_emptied_at_min_instances():
    fleet = [instance("a", "n1", ["llm"]), instance("b", "n2", ["bert"])]
    placement = calm([ModelDemand("llm", SIZE["llm"], 1), ModelDemand("bert", SIZE["bert"], 1)], fleet,
                     FleetBounds(2, 4, 16 * GIB))
    assert (placement.loads, placement.consolidation.emptying) == ((), None)


def test_an_instance_is_not_emptied_when_a_model_would_end_on_fewer_nodes():
    fleet = [instance("a", "n1", ["bert", "llm"]), instance("b", "n2", ["bert"]), instance("c", "n1", ["t5"])]
    models = [ModelDemand("bert", SIZE["bert"], 2), ModelDemand("llm", SIZE["llm"], 1),
              ModelDemand("t5", SIZE["t5"], 1)]
    placement = calm(models, fleet)
    # b is the emptiest, but its bert could go only to c, on n1 beside a's: c's t5 moves instead.
    assert placement.consolidation.emptying == "c"
    assert [m.model for m in placement.loads] == ["t5"]


def test_the_emptied_instance_takes_copies_again_when_a_scale_up_needs_its_room():
    fleet = [instance("a", "n1", ["llm", "resnet"], loading=["resnet"]), instance("b", "n2", ["bert", "t5"]),
             instance("c", "n3", ["resnet"])]
    grown = ONE_EACH[:3] + [ModelDemand("t5", SIZE["t5"], 3)]  # t5 now wants a copy on every instance
    placement = decide(grown, fleet, BOUNDS, Consolidation("c"))
    assert placement.consolidation.emptying is None
    assert Move("c", "t5") in placement.loads and placement.release == ()
