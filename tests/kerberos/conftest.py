"""One Kerberized stack for every test in tests/kerberos: `stack up --hadoop --kerberos`
(a real MIT KDC, ZooKeeper with SASL, the minicluster in secure mode), started once per
session and only when a test here runs. Its HDFS delegation tokens live LIFETIME_S only, so
the one deployment (``kerberos_deployment``, deployment.py) outlives its first token and every
check on it also shows that tarn-am's re-obtained tokens carry it.

``login("alice")`` makes this process a Kerberos client as that principal: KRB5_CONFIG
names the stack's realm, KRB5CCNAME a ticket cache of the test's own and
KRB5_CLIENT_KTNAME the keytab MIT Kerberos gets the ticket from. ``login(None)``: no ticket.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple

import pytest

from tests.support.scripts import load_script

tarnstack = load_script("deploy/local/tarnstack.py")
kdc = tarnstack.kdc
LIFETIME_S = 60  # renew interval = max lifetime: tarn-am re-obtains every 30 s
SHORT_TOKENS = {
    "dfs.namenode.delegation.token.max-lifetime": str(LIFETIME_S * 1000),
    "dfs.namenode.delegation.token.renew-interval": str(LIFETIME_S * 1000),
    # The NodeManagers localize a new container's files with the application's tokens: past
    # their max date only the RM's proxy-user privileges (YARN-2704) get fresh ones for that,
    # as on a real cluster running long-lived applications (docs/kerberos.md).
    "yarn.resourcemanager.proxy-user-privileges.enabled": "true",
    "hadoop.proxyuser.hadoop.hosts": "*",
    "hadoop.proxyuser.hadoop.groups": "*",
}
def deployment_submit_args(stack) -> Tuple[str, ...]:
    """More `tarn submit` arguments for the session's one deployment: every deployment check
    then runs with them. SPNEGO on tarn-am beside the token, HTTP/_HOST being the NodeManager's."""
    return ("--am-auth", "token+spnego", "--am-spnego-keytab", str(stack.kdc.keytab("http")))


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory) -> Iterator["tarnstack.Stack"]:
    stack = tarnstack.Stack(tmp_path_factory.mktemp("kstack"))
    try:
        stack.up(hadoop=True, kerberos=True, hadoop_conf=SHORT_TOKENS)
    except (tarnstack.StackError, kdc.KdcError) as exc:
        pytest.fail(f"the Kerberized stack did not start: {exc}", pytrace=False)
    yield stack
    stack.down()


@pytest.fixture(scope="session")
def kerberos_deployment(secure_stack):
    """The session's one Kerberized demo deployment (test_demo_kerberos.py uses it, in order)."""
    from .deployment import kerberos_demo
    yield from kerberos_demo(secure_stack, deployment_submit_args(secure_stack))


def client_env(stack, cache_dir: Path, keytab: Optional[str]) -> Dict[str, str]:
    cache = cache_dir / f"ccache-{keytab or 'none'}"
    env = {"KRB5_CONFIG": stack.env["KRB5_CONFIG"], "KRB5CCNAME": f"FILE:{cache}"}
    if keytab:
        env["KRB5_CLIENT_KTNAME"] = str(stack.kdc.keytab(keytab))
    return env


@pytest.fixture
def login(secure_stack, tmp_path, monkeypatch) -> Callable[[Optional[str]], Dict[str, str]]:
    def as_principal(keytab: Optional[str]) -> Dict[str, str]:
        monkeypatch.delenv("KRB5_CLIENT_KTNAME", raising=False)
        env = client_env(secure_stack, tmp_path, keytab)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env
    return as_principal
