"""The Java side of TARN's Knox extension (deploy/knox), tested by its own JUnit suite under
Maven Surefire, against the real ZooKeeper of the local stack and a real tarn-authz process."""
from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ElementTree

import pytest

from tests.knox.support import GATEWAY_TOKEN, KNOX_DIR, AuthzProcess, build_knox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def authz(tmp_path_factory):
    server = AuthzProcess(tmp_path_factory.mktemp("knox-junit-authz")).start()
    yield server
    server.stop()


def _surefire_totals() -> dict:
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for report in (KNOX_DIR / "target" / "surefire-reports").glob("TEST-*.xml"):
        suite = ElementTree.parse(report).getroot()
        for key in totals:
            totals[key] += int(suite.get(key, 0))
    return totals


def test_junit_suite_passes_against_real_zookeeper_and_authz(stack, authz):
    build_knox()
    env = dict(os.environ, TARN_TEST_ZK_HOSTS=stack.env["ZK_HOSTS"], TARN_TEST_AUTHZ_URL=authz.url,
               TARN_TEST_AUTHZ_GATEWAY_TOKEN=GATEWAY_TOKEN)
    result = subprocess.run(["mvn", "-B", "-Dstyle.color=never", "-s", str(KNOX_DIR / "settings.xml"), "test"],
                            cwd=KNOX_DIR, env=env, capture_output=True, text=True, timeout=900)
    summary = [line for line in result.stdout.splitlines() if "Tests run:" in line or "FAIL" in line]
    print("\n".join(summary))
    assert result.returncode == 0, f"mvn test failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    totals = _surefire_totals()
    assert totals["tests"] >= 30 and totals["failures"] == 0 and totals["errors"] == 0 and totals["skipped"] == 0, totals
