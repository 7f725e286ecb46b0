"""TARN's settings escaped for YARN's launch script (`export K="V"`, unescaped by the NodeManager);
the real NodeManager's side is tests/hadoop/test_yarn_skein.py."""
from __future__ import annotations

import subprocess

import pytest

from tarn_am.cli.am_client import CliError
from tarn_am.cli.launch_env import launch_env

HOSTILE = 'p"a$s`s\\w o\'rd'


def test_tarns_own_values_come_out_of_a_double_quoted_export_unchanged():
    env = launch_env({"TARN_AM_REDIS_URL": f"redis://:{HOSTILE}@h:6379/0"})
    script = f'export TARN_AM_REDIS_URL="{env["TARN_AM_REDIS_URL"]}"\nprintf %s "$TARN_AM_REDIS_URL"\n'
    assert subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout == \
        f"redis://:{HOSTILE}@h:6379/0"


def test_the_users_own_env_is_left_for_the_shell_to_expand():
    env = {"LD_LIBRARY_PATH": "$PWD/lib", "TARN_NODE_AGENT_ENV": "LD_LIBRARY_PATH=$PWD/lib"}
    assert launch_env(env) == env


@pytest.mark.parametrize("token", ["{{", "}}", "<CPS>", "<LOG_DIR>"])
def test_a_value_the_nodemanager_would_rewrite_is_refused_naming_the_variable(token):
    with pytest.raises(CliError, match=f"TARN_AM_TOKEN's value holds '{token}'"):
        launch_env({"TARN_AM_TOKEN": f"abc{token}def"})
