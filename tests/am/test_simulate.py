"""`tarn simulate`: trace parsing, the start-up delay, the accounting, the sub-command and the bench's verdicts."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tarn_am.autoscale import AutoscaleConfig, QueueTimePolicy
from tarn_am.cli import sim_trace, simulate
from tarn_am.cli.seeds_policy import SeedsPolicy
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
CONFIG = AutoscaleConfig(min_instances=2, max_instances=8, cooldown_s=120)
STEP = sim_trace.parse_trace("t_s,load\n0,1.8\n603,7.2\n1800,7.2\n", "step")


def test_trace_rows_hold_until_the_next_row():
    trace = sim_trace.parse_trace("# comment\nt_s,load\n0,1\n10,3 # burst\n20,1\n30,1\n")
    assert [trace.load_at(t) for t in (0, 9.5, 10, 19, 20, 29)] == [1, 1, 3, 3, 1, 1]
    assert trace.duration_s == 30


@pytest.mark.parametrize("text, message", [
    ("t_s,load\n0,1\n", "at least two rows"),
    ("t_s,load\n5,1\n10,1\n", "first row must be at t_s=0"),
    ("0,1\n10,1\n10,2\n", "times must increase"),
    ("0,1\n10,-1\n", "finite number >= 0"),
    ("0,1\n10,abc\n", "not numbers"),
    ("0,1,2\n10,1\n", "expected 't_s,load'"),
])
def test_bad_traces_are_rejected_with_the_line(text, message):
    with pytest.raises(sim_trace.TraceError, match=message):
        sim_trace.parse_trace(text)


def test_instances_serve_only_after_the_start_up_delay():
    result = simulate.simulate(QueueTimePolicy(CONFIG), CONFIG, STEP, startup_s=60)
    t_request = next(t for t, a in zip(result.times_s, result.allocated) if a == 8)
    t_serve = next(t for t, s in zip(result.times_s, result.serving) if s == 8)
    assert t_request - 603 <= CONFIG.telemetry_interval_s
    assert t_serve - t_request == 60
    assert result.overloaded_s == t_serve - 603


def test_our_policy_beats_the_seeds_on_a_step():
    ours, seeds = simulate.compare(CONFIG, STEP, startup_s=60)
    assert ours.catch_up_s()[0] <= CONFIG.telemetry_interval_s
    assert seeds.catch_up_s()[0] >= 5 * 120  # one instance per cooldown: 6 moves
    assert seeds.overloaded_s >= 5 * ours.overloaded_s
    assert len(ours.decisions) == 1 and len(seeds.decisions) == 6


def test_instance_seconds_count_starting_instances():
    flat = sim_trace.parse_trace("0,1.8\n100,1.8\n")
    result = simulate.simulate(SeedsPolicy(CONFIG), CONFIG, flat, startup_s=60)
    assert result.instance_s == 2 * 100 and result.overloaded_s == 0


def test_the_simulation_is_deterministic_with_noise():
    a = simulate.simulate(QueueTimePolicy(CONFIG), CONFIG, STEP, startup_s=60, noise=0.1, seed=3)
    b = simulate.simulate(QueueTimePolicy(CONFIG), CONFIG, STEP, startup_s=60, noise=0.1, seed=3)
    assert a.allocated == b.allocated and a.instance_s == b.instance_s


def _args(*argv):
    parser = argparse.ArgumentParser(prog="tarn")
    simulate.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_register_adds_the_simulate_sub_command(tmp_path, capsys):
    trace = tmp_path / "step.csv"
    trace.write_text("t_s,load\n0,1.8\n603,7.2\n1200,7.2\n")
    out = tmp_path / "plot.png"
    args = _args("--trace", str(trace), "--startup-s", "60", "--plot", str(out), "--cooldown", "120000",
                 "--min-instances", "2")
    assert args.func is simulate.run and args.model == "queue"
    assert simulate.run(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "tarn " in printed and "seeds " in printed and "M/M/2 per instance" in printed and str(out) in printed


def test_without_plot_nothing_is_drawn_and_the_linear_model_is_there(tmp_path, capsys, monkeypatch):
    trace = tmp_path / "step.csv"
    trace.write_text("t_s,load\n0,1.8\n603,7.2\n1200,7.2\n")
    monkeypatch.chdir(tmp_path)
    assert simulate.run(_args("--trace", str(trace), "--model", "linear", "--min-instances", "2")) == 0
    printed = capsys.readouterr().out
    assert "falls as 1/n" in printed and "plot:" not in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.csv"]


def test_the_queue_flags_reach_the_model():
    model = simulate.model_from_args(_args("--trace", "t.csv", "--servers", "4", "--service-ms", "200",
                                           "--target-queue-ms", "50", "--target-pending", "3", "--target-gpu-pct", "0"))
    p = model.params
    assert (p.servers, p.service_s, p.target_queue_s, p.target_pending, p.target_gpu_pct) == (4, 0.2, 0.05, 3, None)


def test_run_reports_bad_queue_flags(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    trace.write_text("0,1\n10,1\n")
    assert simulate.run(_args("--trace", str(trace), "--servers", "0")) == 2
    assert "servers must be at least 1" in capsys.readouterr().err


def test_the_bench_counts_a_ratio_below_its_target_as_missed():
    bench = load_script("bench/autoscale/bench_autoscale.py")
    ours, seeds = simulate.SimResult("tarn"), simulate.SimResult("seeds")
    ours.overloaded_s, seeds.overloaded_s, ours.instance_s, seeds.instance_s = 100, 300, 1000, 1000
    found = dict(bench.checks("bursts", ours, seeds, CONFIG))
    assert found == {"overloaded seconds seeds/ours = 3.00x (target >= 5x)": False,
                     "instance-seconds ours/seeds = 1.00x (target <= 1.2x)": True}
    seeds.overloaded_s, ours.instance_s = 500, 1300
    assert list(dict(bench.checks("bursts", ours, seeds, CONFIG)).values()) == [True, False]


def test_run_reports_a_bad_trace_and_returns_2(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="tarn")
    simulate.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--trace", str(tmp_path / "missing.csv")])
    assert simulate.run(args) == 2
    assert "cannot read trace" in capsys.readouterr().err


def test_run_reports_inconsistent_flags(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    trace.write_text("0,1\n10,1\n")
    parser = argparse.ArgumentParser(prog="tarn")
    simulate.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--trace", str(trace), "--scale-up", "0.1", "--scale-down", "0.5"])
    assert simulate.run(args) == 2
    assert "scale-down (0.5) must be lower than scale-up (0.1)" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["step", "daily_ramp", "bursts"])
def test_the_kept_bench_traces_parse(name):
    trace = sim_trace.load_trace(ROOT / "bench" / "autoscale" / "traces" / f"{name}.csv")
    assert trace.duration_s >= 3600 and min(trace.loads) > 0
