"""A model's measured footprint from two memory readings (pure)."""
from __future__ import annotations

import os
from pathlib import Path

from tarn_shared import events as ev
from tarn_node_agent.model_memory import MemoryReading, measured
from tarn_node_agent.process_memory import group_rss_bytes

MIB = 1 << 20
READY = ev.ModelLoadState.READY


def test_without_a_readable_gpu_the_footprint_is_the_process_groups_rss_growth():
    state = measured("bert", READY, MemoryReading(100 * MIB), MemoryReading(340 * MIB), 1.5)
    assert (state.memory_bytes, state.memory_source, state.host_memory_bytes) == (240 * MIB, "rss", 240 * MIB)
    assert state.gpu_memory_bytes is None and state.load_time_s == 1.5


def test_with_readable_gpus_the_footprint_is_the_gpu_memory_added_on_each_device():
    before = MemoryReading(100 * MIB, {0: 1000 * MIB, 1: 500 * MIB})
    after = MemoryReading(180 * MIB, {0: 3000 * MIB, 1: 1500 * MIB})
    state = measured("llm", READY, before, after, 12.0)
    assert state.memory_source == "nvml" and state.memory_bytes == 3000 * MIB
    assert [(d.index, d.bytes) for d in state.gpu_memory_bytes] == [(0, 2000 * MIB), (1, 1000 * MIB)]
    assert state.host_memory_bytes == 80 * MIB


def test_memory_given_back_during_a_load_counts_as_zero_not_negative():
    state = measured("m", READY, MemoryReading(300 * MIB, {0: 900}), MemoryReading(200 * MIB, {0: 100}), 0.1)
    assert state.memory_bytes == 0 and state.host_memory_bytes == 0


def test_unreadable_memory_is_reported_unknown_never_zero():
    state = measured("m", READY, MemoryReading(None), MemoryReading(5 * MIB), 0.1)
    assert state.memory_bytes is None and state.memory_source is None


def test_the_group_rss_sums_the_processes_of_the_group_and_is_none_for_an_empty_group(tmp_path: Path):
    own = group_rss_bytes(os.getpgrp())
    assert own is not None and own > MIB  # this interpreter, at least
    for pid, pgrp, rss_pages in ((10, 7, 100), (11, 7, 50), (12, 8, 1000)):
        d = tmp_path / str(pid)
        d.mkdir()
        rest = ["0"] * 40
        rest[0], rest[1], rest[2], rest[21] = "S", "1", str(pgrp), str(rss_pages)
        (d / "stat").write_text(f"{pid} (a (b) c) " + " ".join(rest))
    page = os.sysconf("SC_PAGE_SIZE")
    assert group_rss_bytes(7, tmp_path) == 150 * page
    assert group_rss_bytes(9, tmp_path) is None
