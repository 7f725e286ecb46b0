"""The `tarn` CLI's output rules, pure parts: where its log goes, exit codes and one-line
messages, the --json document and the --watch loop (sleep and output injected)."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import httpx
import pytest

from tarn_am.cli.command_log import CommandLog, log_dir, log_name, stale_logs
from tarn_am.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, classify
from tarn_am.cli.status_view import CLEAR_SCREEN, ended, status_document, watch, watch_frame
from tarn_shared.errors import ConfigError, TarnError


def test_the_log_lives_in_the_xdg_cache_else_the_home_cache():
    assert str(log_dir({"XDG_CACHE_HOME": "/c"}, "/home/u")) == "/c/tarn"
    assert str(log_dir({}, "/home/u")) == "/home/u/.cache/tarn"
    assert log_dir({}, None).name.startswith("tarn-")


def test_log_names_sort_by_time_and_only_the_newest_are_kept():
    old, new = log_name("status", 1_700_000_000, 42), log_name("submit", 1_700_000_100, 7)
    assert old.startswith("tarn-status-") and old.endswith("-42.log")
    names = [new, old, "notes.txt", log_name("logs", 1_700_000_050, 9)]
    assert stale_logs(names, keep=2) == [old]
    assert stale_logs(names, keep=5) == []


def test_the_log_receives_a_childs_output_and_the_terminal_does_not(tmp_path, capfd):
    log = CommandLog(tmp_path / "logs" / "tarn-status-x.log")
    with log.capturing_output() as path:
        subprocess.run([sys.executable, "-c", "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"],
                       check=True)
    log.close()
    out, err = capfd.readouterr()
    assert "to stdout" not in out and "to stderr" not in err
    assert path.read_text().splitlines() == ["to stdout", "to stderr"]


@pytest.mark.parametrize("exc, code, message", [
    (ConfigError("--interval must be positive"), EXIT_USAGE, "--interval must be positive"),
    (TarnError("no running application named tarn-x; give --app-id"), EXIT_FAILED, "no running application"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
    (httpx.ConnectError("[Errno 111] Connection refused",
                        request=httpx.Request("GET", "http://am:8888/api/state")),
     EXIT_FAILED, "cannot reach tarn-am http://am:8888/api/state: [Errno 111] Connection refused"),
])
def test_failures_become_one_line_and_an_exit_code(exc, code, message):
    got_code, got_message, unexpected = classify(exc)
    assert (got_code, unexpected) == (code, False)
    assert got_message.startswith(message) and "\n" not in got_message


def test_an_unexpected_error_is_one_line_with_its_traceback_for_the_log():
    code, message, unexpected = classify(ZeroDivisionError("division\nby zero"))
    assert (code, message, unexpected) == (EXIT_FAILED, "unexpected ZeroDivisionError: division by zero", True)


def test_the_json_document_is_the_state_with_the_app_id_and_the_address():
    document = status_document({"deployment": "d", "app_id": "application_1_2", "desired": 2}, "application_1_2",
                               "http://am:8888")
    assert document == {"deployment": "d", "app_id": "application_1_2", "desired": 2,
                        "am_address": "http://am:8888"}
    assert json.loads(json.dumps(document)) == document


def test_every_output_ends_with_exactly_one_newline():
    assert ended("a\nb") == "a\nb\n" and ended("a\n\n") == "a\n"


def test_a_watch_frame_redraws_a_terminal_and_separates_frames_elsewhere():
    tty = watch_frame("table", 2.0, 0.0, tty=True)
    assert tty.startswith(CLEAR_SCREEN) and tty.endswith("table\n") and "every 2 s, Ctrl-C to stop" in tty
    piped = watch_frame("table", 0.5, 0.0, tty=False)
    assert CLEAR_SCREEN not in piped and piped.endswith("table\n\n")


def test_watch_refreshes_at_the_interval_until_ctrl_c_which_exits_0():
    frames, sleeps = iter(["one\n", "two\n", "three\n"]), []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    out = io.StringIO()
    assert watch(lambda: next(frames), 1.5, out, sleep) == EXIT_OK
    assert out.getvalue() == "one\ntwo\nthree\n" and sleeps == [1.5, 1.5, 1.5]


def test_status_says_whether_autoscaling_is_on_paused_or_stopping_and_which_parts_are_unavailable():
    from tarn_am.cli.subcommands import render_status
    state = {"deployment": "d", "app_id": "application_1_2", "desired": 2, "min_instances": 1, "max_instances": 3,
             "running": 2, "ready": 2, "autoscale": True, "instances": [], "decisions": [], "slots": [],
             "crash_looping": [], "blocked": 0}
    assert render_status(state, "http://am").splitlines()[1:3] == [
        "target 2 (bounds 1..3), running 2, ready 2", "autoscale on"]
    paused = {**state, "autoscale": False, "autoscale_paused": True, "autoscale_paused_reason": "maintenance",
              "autoscale_paused_at": 1_700_000_000.0, "unavailable": {"models": "authz unreachable at http://authz"}}
    lines = render_status(paused, "http://am").splitlines()
    assert lines[2].startswith("autoscale paused since ") and lines[2].endswith(": maintenance")
    assert render_status({**paused, "autoscale_paused_at": None}, "http://am").splitlines()[2] == \
        "autoscale paused: maintenance"
    assert "models unavailable: authz unreachable at http://authz" in lines
    stopping = {**paused, "stopping": True}
    assert render_status(stopping, "http://am").splitlines()[2] == "autoscale off: stopping (tarn stop)"
