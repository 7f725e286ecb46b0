"""What operators see of per-model placement, without servers: the model table behind GET
/api/models, /metrics and the dashboard's matrix (model_table.py), `tarn models`' text, and
the stored form of operators' copies (model_copies_store.py)."""
from __future__ import annotations

from typing import Optional

from tarn_shared import events as ev
from tarn_shared.membership import Member

from tarn_am.cli.models_view import render_models
from tarn_am.model_commands import LoadFailure
from tarn_am.model_copies_store import StoredCopies
from tarn_am.model_round import ModelLine
from tarn_am.model_table import ALL_MODELS_NOTE, TableInputs, models_view, queue_times

MIB = 1 << 20
C1, C2 = "container_1_0001_01_000002", "container_1_0001_01_000003"


def member(instance_id: str, host: str, state=ev.InstanceState.READY) -> Member:
    return Member(instance_id, state, 1, ev.Endpoints(host=host, http_port=8000, grpc_port=8001, metrics_port=8002))


def sample(instance_id: str, states, models=(), gpus=None) -> ev.TelemetrySample:
    return ev.TelemetrySample(deployment="d", app_id="a", instance_id=instance_id, interval_s=2.0,
                              models=list(models), model_states=list(states), gpus=gpus)


def inputs(lines, latest, fresh=None, failures=None) -> TableInputs:
    return TableInputs(lines=lines, members={C1: member(C1, "nm1"), C2: member(C2, "nm2"),
                                             "gone": member("gone", "nm3", ev.InstanceState.STOPPED)},
                       latest=latest, fresh=list(latest.values()) if fresh is None else fresh,
                       failures=failures or {}, container_memory_bytes=1024 * MIB)


BERT_ON_C1 = ev.ModelOnInstance(name="bert", state=ev.ModelLoadState.READY, memory_bytes=300 * MIB,
                                memory_source="rss", load_time_s=2.5)
LLM_FAILED = ev.ModelOnInstance(name="llm", state=ev.ModelLoadState.FAILED, error="out of memory")


def test_each_model_says_copies_wanted_and_loaded_where_each_copy_is_its_memory_queue_load_time_and_last_error():
    lines = [ModelLine(name="bert", wanted=2, held=[C1], loading=[C2], footprint_bytes=300 * MIB),
             ModelLine(name="llm", wanted=1, loading=[C1], missing=1, footprint_bytes=2048 * MIB,
                       why=["1 copies wait for new instances"])]
    latest = {C1: sample(C1, [BERT_ON_C1, LLM_FAILED], [ev.ModelSample(name="bert", request_rate_per_s=10,
                                                                      queue_time_per_request_us=900.0)])}
    failures = {(C1, "llm"): LoadFailure("out of memory", 10.0), (C2, "llm"): LoadFailure("no such model", 5.0)}
    view = models_view("d", "per-model", inputs(lines, latest, failures=failures))
    bert, llm = view.models
    assert (bert.wanted, bert.loaded, bert.loading, bert.missing, bert.instances) == (2, 1, 1, 0, [C1, C2])
    assert {i: c.state for i, c in bert.cells.items()} == {C1: "ready", C2: "load commanded"}
    assert (bert.cells[C1].memory_bytes, bert.cells[C1].memory_source) == (300 * MIB, "rss")
    assert (bert.memory_bytes, bert.memory_source, bert.queue_time_us, bert.load_time_s) == \
        (300 * MIB, "measured", 900.0, 2.5)
    assert bert.last_error is None
    # A failed load re-commanded: the cell says the command, the newest failure is the last error.
    assert {i: c.state for i, c in llm.cells.items()} == {C1: "load commanded"}
    assert (llm.memory_source, llm.queue_time_us, llm.loaded, llm.missing) == ("declared", None, 0, 1)
    assert llm.last_error == f"load on {C1}: out of memory" and llm.why == ["1 copies wait for new instances"]
    # Columns: every instance not stopped, with its memory (the container's, no GPU readable).
    assert [(c.instance_id, c.host, c.used_bytes, c.capacity_bytes, c.memory_of) for c in view.instances] == [
        (C1, "nm1", 300 * MIB, 1024 * MIB, "container"), (C2, "nm2", None, None, None)]


def test_a_failed_copy_the_agent_reports_shows_its_error_when_the_book_has_none():
    lines = [ModelLine(name="llm", wanted=1, footprint_bytes=MIB)]
    (llm,) = models_view("d", "per-model", inputs(lines, {C1: sample(C1, [LLM_FAILED])})).models
    assert llm.cells[C1].state == "failed" and llm.last_error == f"{C1}: out of memory" and llm.loaded == 0


def test_a_ready_copy_commanded_to_unload_shows_the_command_and_no_longer_counts_as_loaded():
    lines = [ModelLine(name="bert", wanted=1, held=[C1], unloading=[C1], footprint_bytes=MIB)]
    (bert,) = models_view("d", "per-model", inputs(lines, {C1: sample(C1, [BERT_ON_C1])})).models
    assert bert.cells[C1].state == "unload commanded" and (bert.loaded, bert.instances) == (0, [])


def test_gpu_instances_show_their_gpus_memory():
    gpus = [ev.GpuSample(index=0, utilization_pct=5, memory_used_bytes=4096 * MIB, memory_total_bytes=16384 * MIB)]
    view = models_view("d", "per-model", inputs([], {C1: sample(C1, [BERT_ON_C1], gpus=gpus)}))
    assert (view.instances[0].used_bytes, view.instances[0].capacity_bytes, view.instances[0].memory_of) == \
        (4096 * MIB, 16384 * MIB, "gpu")


def test_queue_time_is_weighted_by_request_rate_so_an_idle_copy_does_not_halve_a_busy_one():
    busy = sample(C1, [], [ev.ModelSample(name="bert", request_rate_per_s=30, queue_time_per_request_us=1000.0)])
    idle = sample(C2, [], [ev.ModelSample(name="bert", request_rate_per_s=0, queue_time_per_request_us=0.0)])
    assert queue_times([busy, idle]) == {"bert": 1000.0}
    quiet = sample(C2, [], [ev.ModelSample(name="bert", queue_time_per_request_us=50.0)])
    assert queue_times([quiet, idle]) == {"bert": 25.0}  # nothing served: the plain mean


def test_per_model_scalings_own_queue_time_is_shown_when_the_line_carries_one():
    class ScaledLine(ModelLine):  # the line as per-model scaling extends it (an additive field)
        queue_time_us: Optional[float] = None

    lines = [ScaledLine(name="bert", wanted=1, footprint_bytes=MIB, queue_time_us=4200.0)]
    fresh = [sample(C1, [], [ev.ModelSample(name="bert", request_rate_per_s=1, queue_time_per_request_us=10.0)])]
    assert models_view("d", "per-model", inputs(lines, {}, fresh)).models[0].queue_time_us == 4200.0


def test_models_the_caller_may_not_list_are_left_out_and_an_all_models_deployment_has_a_note():
    lines = [ModelLine(name=name, wanted=1, footprint_bytes=MIB) for name in ("bert", "llm")]
    view = models_view("d", "per-model", inputs(lines, {}), listable={"bert": True, "llm": False})
    assert [m.name for m in view.models] == ["bert"]
    plain = models_view("d", "all-models", None)
    assert plain.models == [] and plain.note == ALL_MODELS_NOTE


def test_tarn_models_prints_a_row_per_model_its_missing_copies_and_each_instances_memory():
    lines = [ModelLine(name="bert", wanted=2, held=[C1], loading=[C2], footprint_bytes=300 * MIB),
             ModelLine(name="llm", wanted=1, missing=1, footprint_bytes=2048 * MIB, why=["no instance has room"])]
    latest = {C1: sample(C1, [BERT_ON_C1], [ev.ModelSample(name="bert", request_rate_per_s=1,
                                                           queue_time_per_request_us=1500.0)])}
    text = render_models(models_views_json(lines, latest))
    rows = text.splitlines()
    assert rows[0].split() == ["MODEL", "COPIES", "WHERE", "MEMORY", "QUEUE", "LOAD", "LAST", "ERROR"]
    assert rows[1].split() == ["bert", "1/2", "+1", "loading", f"{C1}", "(ready),", f"{C2}", "(load", "commanded)",
                               "300.0", "MiB", "measured", "1.5", "ms", "2.5", "s", "-"]
    assert rows[2].split()[:6] == ["llm", "0/1", "nowhere", "2.0", "GiB", "declared"]
    assert rows[3] == "model llm: 1 missing; no instance has room"
    assert rows[4] == "" and rows[5].split() == ["INSTANCE", "HOST", "ADDRESS", "STATE", "MEMORY", "USED"]
    assert rows[6].split() == [C1, "nm1", "nm1:8000", "ready", "300.0", "MiB", "of", "1.0", "GiB", "(container)"]
    assert rows[7].split() == [C2, "nm2", "nm2:8000", "ready", "no", "telemetry", "yet"] and len(rows) == 8
    note = render_models({"deployment": "d", "placement": "all-models", "note": ALL_MODELS_NOTE, "models": []})
    assert note == f"d: {ALL_MODELS_NOTE}"


def models_views_json(lines, latest) -> dict:
    return models_view("d", "per-model", inputs(lines, latest)).model_dump(mode="json")


def test_stored_copies_read_back_and_anything_unreadable_restores_nothing():
    text = StoredCopies(copies={"bert": 2, "llm": 0}).model_dump_json()
    assert StoredCopies.decoded(text) == {"bert": 2, "llm": 0}
    assert StoredCopies.decoded(None) is None and StoredCopies.decoded("") is None
    assert StoredCopies.decoded("not json") is None and StoredCopies.decoded('{"copies": {"bert": "x"}}') is None
    assert StoredCopies.decoded('{"copies": {"bert": -1, "llm": 1}}') == {"llm": 1}
