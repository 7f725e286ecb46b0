"""The Python side of the Ranger oracle: build it (./build, cached) and run Apache Ranger's own
policy engine on a batch of suites in one JVM. A suite is {serviceDef, policies (ServicePolicies),
roles? (RangerRoles), userStore? (RangerUserStore), requests: [...]}; see RangerOracle.java."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ORACLE_DIR = Path(__file__).resolve().parent
MAIN_CLASS = "org.tarn.oracle.RangerOracle"
JAVA_HOME_17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")


class OracleUnavailable(RuntimeError):
    """Java, Maven or the Ranger artifacts are missing, or the oracle failed to run."""


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    for candidate in ([Path(home) / "bin" / "java"] if home else []) + [JAVA_HOME_17 / "bin" / "java"]:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("java")
    if not found:
        raise OracleUnavailable("no java on PATH (Java 17 is needed for the Ranger oracle)")
    return found


def build() -> None:
    result = subprocess.run([str(ORACLE_DIR / "build")], capture_output=True, text=True)
    if result.returncode != 0:
        raise OracleUnavailable(f"tests/authz/oracle/build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def _run(mode: str, payload: dict, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="ranger-oracle-") as tmp:
        source = Path(tmp) / "in.json"
        source.write_text(json.dumps(payload))
        classpath = f"{ORACLE_DIR / 'target' / 'classes'}{os.pathsep}{ORACLE_DIR / 'lib' / '*'}"
        # Ranger reads validity schedules without a time zone in the JVM's default zone: pin it to UTC.
        command = [java(), "-Duser.timezone=UTC", "-Xss4m", "-cp", classpath, MAIN_CLASS, mode, str(source), str(target)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise OracleUnavailable(f"Ranger oracle exited {result.returncode}:\n{result.stderr[-4000:]}")


def evaluate(suites: list[dict]) -> list[list[dict] | str]:
    """Ranger's {isAllowed, isAudited, policyId} for every request of every suite, in one JVM run;
    a suite Ranger could not load comes back as its error message instead of a list."""
    with tempfile.TemporaryDirectory(prefix="ranger-oracle-") as tmp:
        target = Path(tmp) / "out.json"
        _run("evaluate", {"suites": suites}, target)
        answer = json.loads(target.read_text())
    return [s["error"] if "error" in s else s["results"] for s in answer["suites"]]


def write_payloads(suite: dict, directory: Path) -> None:
    """policies.json, roles.json and userstore.json as Ranger's own classes serialize them."""
    _run("write-payloads", suite, directory)
