"""tarn-authz downloads its policies from Ranger Admin with its own keytab, on the stack's real
KDC. Ranger Admin itself cannot run here; in front of the replay server (tests/authz/replay)
runs Hadoop's AuthenticationFilter of type kerberos (hadoop-auth, on the minicluster's
classpath: what Ranger Admin's RangerKRBAuthenticationFilter extends) with the HTTP/localhost
keytab, in a small Jetty (replay/spnego/SpnegoFront.java), which hands the replay the short
name it authenticated; the replay allows `tarn-authz` (Ranger's policy.download.auth.users)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tarn_authz.app import source_factory
from tarn_authz.decision_metrics import AuthzMetrics
from tarn_authz.ranger_admin import RangerAdminClient
from tarn_authz.registry import PolicyRegistry
from tarn_authz.settings import AuthzSettings
from tarn_authz.sources import DiskCache
from tests.authz.replay.server import RangerReplay
from tests.authz.servers import ServerThread
from tests.support.polling import wait_for
from tests.support.ports import free_port

from .conftest import kdc

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.anyio, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]
HADOOP_LIB = REPO / "deploy" / "local" / "hadoop" / "lib"
FRONT_SOURCE = REPO / "tests" / "authz" / "replay" / "spnego" / "SpnegoFront.java"
SERVICE = "triton_prod"
AUTHZ = kdc.principal("tarn-authz/localhost")


@pytest.fixture(scope="module")
def ranger(secure_stack, tmp_path_factory) -> Iterator[RangerReplay]:
    """The replay behind Hadoop's SPNEGO filter; ``ranger.url`` is the front's."""
    if shutil.which("javac") is None or not (HADOOP_LIB / "hadoop-auth-3.4.1.jar").exists():
        pytest.fail("javac and the minicluster's jars (deploy/local/hadoop/minicluster fetch) are needed",
                    pytrace=False)
    build = compiled_front(tmp_path_factory.mktemp("spnego-front"))
    classpath = f"{build}:{HADOOP_LIB}/*"
    replay = RangerReplay(download_users={"tarn-authz"})
    replay.publish(SERVICE, "v1")
    port = free_port()
    log_path = tmp_path_factory.mktemp("spnego-front-log") / "front.log"
    with ServerThread(replay.app()) as backend, open(log_path, "wb") as log:
        front = subprocess.Popen(
            ["java", f"-Djava.security.krb5.conf={secure_stack.env['KRB5_CONFIG']}", "-cp", classpath,
             "SpnegoFront", str(port), backend.url, kdc.principal("HTTP/localhost"),
             str(secure_stack.kdc.keytab("http"))], stdout=log, stderr=subprocess.STDOUT)
        try:
            replay.url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _answers(replay.url) or front.poll() is not None, 60, "the SPNEGO front to start")
            assert front.poll() is None, log_path.read_text()[-2000:]
            yield replay
        finally:
            front.terminate()
            front.wait(timeout=15)


def compiled_front(scratch: Path) -> Path:
    """SpnegoFront's classes, compiled once per version of its source (javac takes ~10 s here)."""
    digest = hashlib.sha256(FRONT_SOURCE.read_bytes()).hexdigest()[:16]
    build = FRONT_SOURCE.parent / "target" / digest
    if not (build / "SpnegoFront.class").exists():
        subprocess.run(["javac", "-cp", f"{HADOOP_LIB}/*", "-d", str(scratch), str(FRONT_SOURCE)], check=True,
                       timeout=120)
        build.parent.mkdir(exist_ok=True)
        shutil.copytree(scratch, build, dirs_exist_ok=True)
    return build


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/service/plugins/secure/policies/download/{SERVICE}", timeout=2, trust_env=False)
    except httpx.HTTPError:
        return False
    return True


@pytest.fixture
def krb5(secure_stack, tmp_path, monkeypatch):
    """This process as a Kerberos client of the stack's realm, with no ticket of its own."""
    monkeypatch.setenv("KRB5_CONFIG", secure_stack.env["KRB5_CONFIG"])
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'ccache-none'}")
    monkeypatch.delenv("KRB5_CLIENT_KTNAME", raising=False)


async def refreshed(settings: AuthzSettings, cache: Path):
    async with RangerAdminClient.open_http(settings) as http:
        registry = PolicyRegistry(default_service=SERVICE, default_audit=False,
                                  make_source=source_factory(settings, http),
                                  disk_cache=DiskCache(cache, settings.ranger_app_id), metrics=AuthzMetrics())
        state = registry.states[SERVICE]
        await registry.refresh(state)
        return state


def settings_for(ranger: RangerReplay, **extra) -> AuthzSettings:
    return AuthzSettings(ranger_url=ranger.url, ranger_service=SERVICE, ranger_auth="kerberos",
                         gateway_token="kerberos-test", **extra)


async def test_authz_downloads_through_spnego_as_its_own_principal_from_its_keytab(ranger, secure_stack, krb5,
                                                                                   tmp_path):
    settings = settings_for(ranger, ranger_kerberos_principal=AUTHZ,
                            ranger_kerberos_keytab=secure_stack.kdc.keytab("authz"))
    state = await refreshed(settings, tmp_path / "cache")
    assert state.last_error is None and state.loaded and state.bundle.policy_version == 7
    secure = [r for r in ranger.requests if r["secure"]]
    assert {r["kind"] for r in secure} == {"policies", "roles", "users"}
    assert secure[-1]["remote_user"] == "tarn-authz"  # the filter's short name of tarn-authz/localhost@TARN.TEST


async def test_without_a_ticket_hadoops_filter_answers_401_and_nothing_is_loaded(ranger, krb5, tmp_path):
    state = await refreshed(settings_for(ranger, ranger_kerberos_principal=AUTHZ), tmp_path / "cache")
    assert not state.loaded
    assert state.last_error.startswith(f"AuthError: cannot log in to Kerberos as {AUTHZ} with the credential cache "
                                       "(kinit -kt, or set TARN_AUTHZ_RANGER_KERBEROS_KEYTAB)")
    with httpx.Client(trust_env=False) as plain:  # the filter itself, to anyone without SPNEGO
        answer = plain.get(f"{ranger.url}/service/plugins/secure/policies/download/{SERVICE}")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Negotiate"


async def test_a_principal_ranger_does_not_list_is_refused_403(ranger, secure_stack, krb5, tmp_path):
    settings = settings_for(ranger, ranger_kerberos_principal=kdc.principal("bob"),
                            ranger_kerberos_keytab=secure_stack.kdc.keytab("bob"))
    state = await refreshed(settings, tmp_path / "cache")
    assert not state.loaded and "AuthError: Ranger Admin refused the download (403" in state.last_error


async def test_a_wrong_or_missing_keytab_is_named_and_the_last_good_policies_are_kept(ranger, secure_stack, krb5,
                                                                                       tmp_path):
    good = settings_for(ranger, ranger_kerberos_principal=AUTHZ,
                        ranger_kerberos_keytab=secure_stack.kdc.keytab("authz"))
    assert (await refreshed(good, tmp_path / "cache")).loaded
    wrong = secure_stack.kdc.keytab("bob")
    for keytab, says in ((wrong, f"TARN_AUTHZ_RANGER_KERBEROS_KEYTAB {wrong} (does it hold {AUTHZ}'s key?"),
                         (tmp_path / "gone.keytab", f"TARN_AUTHZ_RANGER_KERBEROS_KEYTAB {tmp_path}/gone.keytab: "
                                                    "no such file")):
        # a restart with the bad keytab: the last good download, from disk, still decides
        state = await refreshed(settings_for(ranger, ranger_kerberos_principal=AUTHZ, ranger_kerberos_keytab=keytab),
                                tmp_path / "cache")
        assert state.loaded and state.bundle.origin == "cache" and state.bundle.policy_version == 7
        assert state.last_error.startswith(f"AuthError: cannot log in to Kerberos as {AUTHZ}")
        assert says in state.last_error
