"""`tarn simulate --plot FILE.png`: a real PNG of both policies, and one-line errors when
matplotlib is missing or the file cannot be written."""
from __future__ import annotations

import argparse
import struct
import sys

import pytest

from tarn_am.autoscale import AutoscaleConfig
from tarn_am.cli import sim_plot, simulate
from tarn_am.cli.queue_model import QueueModel
from tarn_am.cli.sim_trace import parse_trace

CONFIG = AutoscaleConfig(min_instances=2, max_instances=8, cooldown_s=120)
STEP = parse_trace("t_s,load\n0,1.8\n603,7.2\n1200,7.2\n", "step")


def _png_size(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _draw(out):
    results = simulate.compare(CONFIG, STEP, startup_s=60, model=QueueModel())
    return sim_plot.plot(results, out, title="step", scale_up=CONFIG.scale_up, scale_down=CONFIG.scale_down,
                         max_instances=CONFIG.max_instances)


def test_the_plot_is_a_png_of_the_documented_size(tmp_path):
    out = _draw(tmp_path / "deep" / "er" / "step.png")  # missing folders are made
    data = out.read_bytes()
    assert _png_size(data) == (1210, 770)
    assert len(data) > 20_000  # two panels, four lines and the shading, not an empty canvas


def test_a_path_that_cannot_be_written_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(sim_plot.PlotError, match=r"^cannot write plot .*a-file/deeper/step.png: .*a-file is not a folder$"):
        _draw(blocker / "deeper" / "step.png")
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(sim_plot.PlotError, match=r"^cannot write plot .*taken.png: Is a directory$"):
        _draw(tmp_path / "taken.png")


def test_the_plot_must_be_a_png(tmp_path):
    with pytest.raises(sim_plot.PlotError, match="ending in .png"):
        sim_plot.check_target(tmp_path / "step.pdf")


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an environment without it raises: ImportError
    with pytest.raises(sim_plot.PlotError, match=r"pip install 'tarn-am\[plot\]'"):
        sim_plot.check_target(tmp_path / "step.png")


def test_tarn_simulate_reports_an_unwritable_plot_before_simulating(tmp_path, capsys, monkeypatch):
    trace = tmp_path / "step.csv"
    trace.write_text("t_s,load\n0,1.8\n603,7.2\n1200,7.2\n")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    parser = argparse.ArgumentParser(prog="tarn")
    simulate.register(parser.add_subparsers(dest="command"))
    monkeypatch.setattr(simulate, "compare", lambda *a, **k: pytest.fail("simulated before checking --plot"))
    assert simulate.run(parser.parse_args(["simulate", "--trace", str(trace), "--plot", str(tmp_path / "x.png")])) == 2
    err = capsys.readouterr().err
    assert err.startswith("tarn simulate: --plot needs matplotlib") and err.count("\n") == 1


def test_tarn_simulate_reports_a_plot_it_could_not_write_after_simulating(tmp_path, capsys):
    trace = tmp_path / "step.csv"
    trace.write_text("t_s,load\n0,1.8\n603,7.2\n1200,7.2\n")
    (tmp_path / "taken.png").mkdir()
    parser = argparse.ArgumentParser(prog="tarn")
    simulate.register(parser.add_subparsers(dest="command"))
    assert simulate.run(parser.parse_args(["simulate", "--trace", str(trace), "--plot", str(tmp_path / "taken.png")])) == 2
    assert capsys.readouterr().err == f"tarn simulate: cannot write plot {tmp_path / 'taken.png'}: Is a directory\n"
