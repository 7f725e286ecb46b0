"""One set of policy rules (policy_config.policy_problems) judged in three places: `tarn submit`
refuses a combination before YARN with one line naming the flags, tarn-am's settings refuse it
naming the environment variables (exit 78, so the supervisor stops instead of looping), and
what submit accepts the policy and the reconcile timings accept too."""
from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tarn_shared.errors import ConfigError

from tarn_am.cli.arguments import build_parser, submit_values
from tarn_am.cli.options import AGENT_INTERVALS, FLAG_OF, SubmitOptions
from tarn_am.cli.spec import build_spec, launcher_for
from tarn_am.policy_config import RULES
from tarn_am.settings import AmSettings

BASE = ["submit", "--model-repository", "hdfs:///m", "--runtime", "process"]

# flags that break one rule -> what submit says (and the variable tarn-am names for the same value)
REFUSED = [
    (["--scale-down", "0"], "--scale-down (0) must be above 0", {"TARN_AM_SCALE_DOWN": "0"}),
    (["--scale-up", "0", "--scale-down", "-1"], "--scale-up (0) must be above 0", {"TARN_AM_SCALE_UP": "0"}),
    (["--scale-up", "0.5", "--scale-down", "0.5"], "--scale-down (0.5) must be lower than --scale-up (0.5)",
     {"TARN_AM_SCALE_UP": "0.5", "TARN_AM_SCALE_DOWN": "0.5"}),
    (["--min-instances", "-1"], "--min-instances (-1) must not be negative", {"TARN_AM_MIN_INSTANCES": "-1"}),
    (["--max-instances", "0", "--min-instances", "0"], "--max-instances (0) must be at least 1",
     {"TARN_AM_MAX_INSTANCES": "0", "TARN_AM_MIN_INSTANCES": "0"}),
    (["--min-instances", "3", "--max-instances", "2"], "--min-instances (3) must not exceed --max-instances (2)",
     {"TARN_AM_MIN_INSTANCES": "3", "TARN_AM_MAX_INSTANCES": "2"}),
    (["--cooldown", "-1"], "--cooldown must not be negative", {"TARN_AM_COOLDOWN_S": "-0.001"}),
    (["--stabilization", "-5"], "--stabilization (-5 s) must not be negative", {"TARN_AM_STABILIZATION_S": "-5"}),
    (["--telemetry-interval", "0"], "--telemetry-interval (0 s) must be above 0",
     {"TARN_AM_TELEMETRY_INTERVAL_S": "0"}),
    (["--agent-env", "TARN_NODE_AGENT_TELEMETRY_INTERVAL_S=5"],
     "--agent-env TARN_NODE_AGENT_TELEMETRY_INTERVAL_S (5 s) differs from --telemetry-interval (2 s)", None),
    (["--start-timeout", "0"], "--start-timeout (0 s) must be above 0", {"TARN_AM_START_TIMEOUT_S": "0"}),
    (["--blocked-timeout", "0"], "--blocked-timeout (0 s) must be above 0", {"TARN_AM_BLOCKED_TIMEOUT_S": "0"}),
    (["--heartbeat-timeout", "0"], "--heartbeat-timeout (0 s) must be above 0", {"TARN_AM_HEARTBEAT_TIMEOUT_S": "0"}),
    (["--heartbeat-timeout", "9"], "--heartbeat-timeout (9 s) must be at least twice the node-agent's heartbeat "
     "interval (TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S's default, 5 s)", {"TARN_AM_HEARTBEAT_TIMEOUT_S": "9"}),
    (["--heartbeat-timeout", "5", "--agent-env", "TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S=3"],
     "--heartbeat-timeout (5 s) must be at least twice the node-agent's heartbeat interval "
     "(--agent-env TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S, 3 s)",
     {"TARN_AM_HEARTBEAT_TIMEOUT_S": "5", "TARN_AM_AGENT_HEARTBEAT_INTERVAL_S": "3"}),
    (["--agent-env", "TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S=soon"],
     "--agent-env TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S: 'soon' is not a number of seconds", None),
    (["--crash-loop-failures", "0"], "--crash-loop-failures (0) must be at least 1",
     {"TARN_AM_CRASH_LOOP_FAILURES": "0"}),
    (["--crash-loop-window", "0"], "--crash-loop-window (0 s) must be above 0", {"TARN_AM_CRASH_LOOP_WINDOW_S": "0"}),
    (["--drain-timeout", "0"], "--drain-timeout (0 s) must be above 0", {"TARN_AM_DRAIN_TIMEOUT_S": "0"}),
]


def submit_options(argv) -> SubmitOptions:
    return SubmitOptions.parse(submit_values(build_parser().parse_args(BASE + argv), {}))


def am_settings(env) -> AmSettings:
    values = {k.removeprefix("TARN_AM_").lower(): v for k, v in env.items() if k.startswith("TARN_AM_")}
    return AmSettings.load(**values)


def master_env(options: SubmitOptions):
    return build_spec(options, ["nm1", "nm2"], launcher_for(options, sys.executable)).master.env


@pytest.mark.parametrize("flags, message, am_env", REFUSED, ids=[" ".join(r[0]) for r in REFUSED])
def test_each_combination_the_policy_rejects_is_refused_by_submit_in_one_line_and_by_tarn_am(flags, message, am_env):
    with pytest.raises(ConfigError) as refused:
        submit_options(flags)
    problems = str(refused.value).splitlines()[1:]
    assert len(problems) == 1 and message in problems[0], str(refused.value)
    if am_env is not None:
        variable = next(iter(am_env))
        with pytest.raises(ConfigError) as settings_refused:
            am_settings({"TARN_AM_DEPLOYMENT": "d", "TARN_AM_SLOTS": "s=h", **am_env})
        text = str(settings_refused.value)
        assert "\n" not in text and variable in text, text


def test_every_rule_of_the_policy_is_exercised_above():
    # A new rule without a case here would be one submit was never checked against.
    policy_only = {("stale_after_intervals",), ("startup_s",), ("trend_window_s",),  # fixed in tarn-am
                   ("restart_backoff_initial_s", "restart_backoff_max_s")}
    messages = [message for _, message, _ in REFUSED]
    for fields, _, template in RULES:
        if fields in policy_only:
            continue
        flag = FLAG_OF.get(fields[0]) or {"cooldown_s": "--cooldown"}.get(fields[0]) or \
            f"--agent-env {AGENT_INTERVALS[fields[0]][0]}"
        fixed = max((text for text, *_ in string.Formatter().parse(template)), key=len).split(":")[0]
        assert any(m.startswith(flag) and fixed in m for m in messages), f"no case breaks the rule on {fields}"


def test_the_timings_reach_tarn_am_and_the_agents_with_the_seeds_defaults():
    defaults = master_env(submit_options([]))
    assert (defaults["TARN_AM_STABILIZATION_S"], defaults["TARN_AM_START_TIMEOUT_S"], defaults["TARN_AM_COOLDOWN_S"],
            defaults["TARN_AM_HEARTBEAT_TIMEOUT_S"], defaults["TARN_AM_TELEMETRY_INTERVAL_S"],
            defaults["TARN_AM_CRASH_LOOP_FAILURES"], defaults["TARN_AM_CRASH_LOOP_WINDOW_S"]) == \
        ("300.0", "300.0", "120.0", "20.0", "2.0", "5", "300.0")
    o = submit_options(["--stabilization", "15", "--telemetry-interval", "1", "--start-timeout", "90",
                        "--heartbeat-timeout", "6", "--agent-env", "TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S=2",
                        "--crash-loop-failures", "3", "--crash-loop-window", "60"])
    spec = build_spec(o, ["nm1"], launcher_for(o, sys.executable))
    agent = next(iter(spec.services.values())).env
    assert agent["TARN_NODE_AGENT_TELEMETRY_INTERVAL_S"] == "1.0"
    settings = am_settings(dict(spec.master.env))
    config, timings = settings.autoscale_config(), settings.reconcile_timings()
    assert (config.stabilization_s, config.telemetry_interval_s) == (15.0, 1.0)
    assert (timings.start_timeout_s, timings.heartbeat_timeout_s, timings.crash_loop_failures,
            timings.crash_loop_window_s) == (90.0, 6.0, 3, 60.0)


value_sets = st.fixed_dictionaries({
    "--scale-up": st.sampled_from(["0", "0.2", "0.8", "1.5"]),
    "--scale-down": st.sampled_from(["-0.1", "0", "0.1", "0.2", "0.8"]),
    "--min-instances": st.sampled_from(["0", "1", "3"]),
    "--max-instances": st.sampled_from(["0", "1", "2", "8"]),
    "--cooldown": st.sampled_from(["-1", "0", "5000"]),
    "--stabilization": st.sampled_from(["-1", "0", "20"]),
    "--telemetry-interval": st.sampled_from(["0", "0.5", "2"]),
    "--start-timeout": st.sampled_from(["0", "60"]),
    "--heartbeat-timeout": st.sampled_from(["0", "4", "10", "20"]),
    "--crash-loop-failures": st.sampled_from(["0", "1", "5"]),
    "--crash-loop-window": st.sampled_from(["0", "30"]),
    "agent heartbeat": st.sampled_from([None, "1", "2", "5"]),
})


@settings(max_examples=300, deadline=None)
@given(value_sets)
def test_what_submit_accepts_tarn_am_accepts_and_what_it_refuses_tarn_am_would_refuse(values):
    flags = []
    for flag, value in values.items():
        if flag == "agent heartbeat":
            flags += [] if value is None else ["--agent-env", f"TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S={value}"]
        else:
            flags += [flag, value]
    try:
        options = submit_options(flags)
    except ConfigError:
        options = None
    # The same values as tarn-am would read them, skipping submit's judgement.
    env = {"TARN_AM_DEPLOYMENT": "d", "TARN_AM_SLOTS": "s=h", "TARN_AM_SCALE_UP": values["--scale-up"],
           "TARN_AM_SCALE_DOWN": values["--scale-down"], "TARN_AM_MIN_INSTANCES": values["--min-instances"],
           "TARN_AM_MAX_INSTANCES": values["--max-instances"],
           "TARN_AM_COOLDOWN_S": str(int(values["--cooldown"]) / 1000), "TARN_AM_STABILIZATION_S": values["--stabilization"],
           "TARN_AM_TELEMETRY_INTERVAL_S": values["--telemetry-interval"],
           "TARN_AM_START_TIMEOUT_S": values["--start-timeout"], "TARN_AM_HEARTBEAT_TIMEOUT_S": values["--heartbeat-timeout"],
           "TARN_AM_CRASH_LOOP_FAILURES": values["--crash-loop-failures"],
           "TARN_AM_CRASH_LOOP_WINDOW_S": values["--crash-loop-window"],
           "TARN_AM_AGENT_HEARTBEAT_INTERVAL_S": values["agent heartbeat"] or "5"}
    try:
        direct = am_settings(env)
        direct.autoscale_config(), direct.reconcile_timings()
        am_accepts = True
    except (ConfigError, ValueError):
        am_accepts = False
    assert (options is not None) == am_accepts, (flags, env)
    if options is not None:  # and through the spec, what submit sends is what tarn-am runs with
        settings_from_spec = am_settings(dict(master_env(options)))
        settings_from_spec.autoscale_config(), settings_from_spec.reconcile_timings()


def test_tarn_am_exits_78_with_one_line_on_a_policy_the_rules_refuse(tmp_path):
    env = dict(os.environ, TARN_AM_DEPLOYMENT="d", TARN_AM_SLOTS="s=h", TARN_AM_SCALE_DOWN="0",
               TARN_AM_EXIT_REASON_FILE=str(tmp_path / "reason"))
    done = subprocess.run([sys.executable, "-m", "tarn_am"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 78
    assert done.stderr.strip().splitlines() == [
        "tarn-am: invalid settings: TARN_AM_SCALE_DOWN (0) must be above 0: load is never below 0, so no instance "
        "would ever drain"]
    assert (tmp_path / "reason").read_text().startswith("invalid settings: TARN_AM_SCALE_DOWN (0) must be above 0")


SUPERVISED = Path(__file__).with_name("supervised_child.py")


def supervise(tmp_path, *child_args, failures="3", window="60"):
    env = dict(os.environ, TARN_AM_CRASH_LOOP_FAILURES=failures, TARN_AM_CRASH_LOOP_WINDOW_S=window)
    env.pop("SKEIN_APPLICATION_ID", None)
    return subprocess.run([sys.executable, "-m", "tarn_am.supervisor", sys.executable, str(SUPERVISED),
                           str(tmp_path / "starts"), *child_args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_the_supervisor_stops_at_once_on_a_configuration_error_with_its_message(tmp_path):
    done = supervise(tmp_path, "78", "TARN_AM_SCALE_DOWN (0) must be above 0")
    assert done.returncode == 78
    assert (tmp_path / "starts").read_text() == "x"  # started once, never again
    assert "tarn-am configuration error: TARN_AM_SCALE_DOWN (0) must be above 0" in done.stderr


def test_the_supervisor_stops_a_start_error_loop_at_its_threshold_with_the_reason(tmp_path):
    done = supervise(tmp_path, "1", "cannot bind 0.0.0.0:8888: [Errno 98] Address already in use",
                     failures="3", window="60")
    assert done.returncode == 1
    assert (tmp_path / "starts").read_text() == "xxx"  # the threshold's count of starts, then no more
    assert ("tarn-am crash loop: 3 exits in 60 s, the last with 1: cannot bind 0.0.0.0:8888: "
            "[Errno 98] Address already in use") in done.stderr
