"""Placement's inputs from the agents' telemetry and the deployment's plan (pure)."""
from __future__ import annotations

from tarn_shared import events as ev

from tarn_am.model_copies import ModelPlan, ModelTarget
from tarn_am.model_fleet import instances_from, measured_footprints, model_demands
from tarn_am.model_placement import FleetBounds, Move, decide

GIB = 1 << 30
READY, LOADING, UNLOADING = ev.ModelLoadState.READY, ev.ModelLoadState.LOADING, ev.ModelLoadState.UNLOADING


def sample(instance_id, states=(), gpus=None):
    return ev.TelemetrySample(deployment="d", app_id="a", instance_id=instance_id, interval_s=1.0,
                              model_states=[ev.ModelOnInstance(name=n, state=s, memory_bytes=m) for n, s, m in states],
                              gpus=gpus)


def gpu(index, used_gib, total_gib):
    return ev.GpuSample(index=index, utilization_pct=0, memory_used_bytes=used_gib * GIB,
                        memory_total_bytes=total_gib * GIB)


def test_the_largest_measurement_of_a_model_is_its_footprint():
    samples = [sample("i1", [("bert", READY, 2 * GIB)]), sample("i2", [("bert", READY, 3 * GIB), ("x", LOADING, None)])]
    assert measured_footprints(samples) == {"bert": 3 * GIB}


def test_without_gpus_the_container_memory_holds_the_footprints_of_its_models():
    samples = [sample("i1", [("bert", READY, 2 * GIB), ("old", UNLOADING, 1 * GIB), ("new", LOADING, None)])]
    (i1,) = instances_from(samples, {"i1": "n1"}, 8 * GIB, {"new": 3 * GIB})
    assert (i1.capacity_bytes, i1.used_bytes) == (8 * GIB, 6 * GIB)  # an unloading model still holds memory
    assert i1.models == {"bert", "new"}  # ...but is no longer a copy


def test_with_gpus_capacity_and_use_are_what_nvml_reads():
    samples = [sample("i1", [("bert", READY, 2 * GIB)], gpus=[gpu(0, 10, 80), gpu(1, 4, 80)])]
    (i1,) = instances_from(samples, {"i1": "n1"}, 8 * GIB)
    assert (i1.capacity_bytes, i1.used_bytes) == (160 * GIB, 14 * GIB)


def test_an_instance_without_a_known_node_is_left_out():
    assert instances_from([sample("i1"), sample("gone")], {"i1": "n1"}, GIB)[0].instance_id == "i1"
    assert len(instances_from([sample("i1"), sample("gone")], {"i1": "n1"}, GIB)) == 1


def test_demands_hold_the_wanted_copies_within_bounds_and_use_measured_memory_once_known():
    plan = ModelPlan(default=ModelTarget(min_copies=1, max_copies=2, memory_bytes=GIB),
                     models={"bert": ModelTarget(min_copies=0, max_copies=4, memory_bytes=2 * GIB)})
    demands = {d.name: d for d in model_demands(plan, ["bert", "resnet"], {"bert": 9, "resnet": 0},
                                                {"resnet": 3 * GIB})}
    assert (demands["bert"].copies, demands["bert"].footprint_bytes) == (4, 2 * GIB)
    assert (demands["resnet"].copies, demands["resnet"].footprint_bytes) == (1, 3 * GIB)


def test_a_listed_plan_serves_only_its_models_and_telemetry_drives_a_placement():
    plan = ModelPlan(models={"a": ModelTarget(min_copies=2, max_copies=2, memory_bytes=3 * GIB),
                             "b": ModelTarget(min_copies=1, max_copies=1, memory_bytes=3 * GIB)})
    demands = model_demands(plan, ["a", "b", "c"], {}, {})
    assert [d.name for d in demands] == ["a", "b"]
    samples = [sample("i1", [("a", READY, 3 * GIB)]), sample("i2", [("c", READY, 1 * GIB)])]
    instances = instances_from(samples, {"i1": "n1", "i2": "n2"}, 4 * GIB)
    placement = decide(demands, instances, FleetBounds(1, 3, 4 * GIB))
    assert placement.unloads == (Move("i2", "c"),) and placement.loads == (Move("i2", "a"),)
    assert placement.missing == {"b": 1} and placement.instance_count == 3  # b fits nowhere: one more instance
