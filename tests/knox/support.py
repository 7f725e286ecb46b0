"""Real servers for the Knox tests: a tarn-authz process on a local policy folder, the Knox
extension built by deploy/knox/build, and a Knox gateway (org.apache.knox:gateway-release
from Maven Central) on loopback with a test topology."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import httpx

from tests.support.ports import free_port
from tests.support.stack_fixture import tarnstack

ROOT = Path(__file__).resolve().parents[2]
KNOX_DIR = ROOT / "deploy" / "knox"
KNOX_LIB = KNOX_DIR / "runtime" / "target" / "knox" / "lib"
EXTENSION_JAR = KNOX_DIR / "target" / "tarn-knox-0.1.0.jar"
SERVICE_DEFINITION = KNOX_DIR / "services" / "triton"
SERVICEDEF = json.loads((ROOT / "deploy" / "ranger" / "triton-servicedef.json").read_text())
JAVA = shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"), "bin")) \
    or shutil.which("java") or "java"

RANGER_SERVICE = "triton_knox"
GATEWAY_TOKEN = "knox-gateway-secret"
PLAIN_TOKEN = "knox-plain-secret"
MASTER_SECRET = "knox-test-master"
USER_HEADER = "X-Knox-Test-User"
GROUPS_HEADER = "X-Knox-Test-Groups"


def _policy(pid: int, models: List[str], accesses: List[str], users=(), groups=()) -> Dict:
    return {"id": pid, "name": f"p{pid}", "isEnabled": True, "isAuditEnabled": True,
            "resources": {"model": {"values": models}},
            "policyItems": [{"users": list(users), "groups": list(groups),
                             "accesses": [{"type": a, "isAllowed": True} for a in accesses]}]}


# What the JUnit tests (deploy/knox/src/test/.../TestServers.java) and the end-to-end test expect.
POLICIES = {"serviceName": RANGER_SERVICE, "policyVersion": 1, "serviceDef": SERVICEDEF, "policies": [
    _policy(1, ["add_sub"], ["infer", "metadata", "list"], users=["alice"]),
    _policy(2, ["identity"], ["infer"], users=["bob"]),
    _policy(3, ["identity"], ["infer", "metadata"], groups=["analysts"]),
    _policy(4, ["*"], ["list"], users=["carol"]),
]}


def build_knox() -> None:
    """deploy/knox/build (cached): the extension jar and the Knox gateway's jars."""
    result = subprocess.run([str(KNOX_DIR / "build")], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"deploy/knox/build failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


class AuthzProcess:
    """tarn-authz (the console script of this virtualenv) serving POLICIES (or ``policies``) from a local folder."""

    def __init__(self, workdir: Path, policies: Optional[Dict] = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "authz.log"
        self.proc: Optional[subprocess.Popen] = None
        folder = workdir / "policies"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{RANGER_SERVICE}.json").write_text(json.dumps(policies or POLICIES))

    def env(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TARN_", "RANGER_"))}
        env.update({
            "TARN_AUTHZ_RANGER_SERVICE": RANGER_SERVICE,
            "TARN_AUTHZ_POLICY_DIR": str(self.workdir / "policies"),
            "TARN_AUTHZ_CACHE_DIR": str(self.workdir / "cache"),
            "TARN_AUTHZ_GATEWAY_TOKEN": GATEWAY_TOKEN,
            "TARN_AUTHZ_TOKEN": PLAIN_TOKEN,
            "TARN_AUTHZ_SERVE_DEPLOYMENTS": "false",
            "TARN_AUTHZ_HOST": "127.0.0.1",
            "TARN_AUTHZ_PORT": str(self.port),
            "TARN_AUTHZ_LOG_JSON": "false",
        })
        return env

    def start(self) -> "AuthzProcess":
        executable = Path(sys.executable).parent / "tarn-authz"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(executable)], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

        def healthy() -> bool:
            try:
                return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        tarnstack.wait_until(healthy, "tarn-authz", self.log_path, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            tarnstack.stop_pid(self.proc.pid)
            self.proc = None

    def decisions(self) -> float:
        text = httpx.get(self.url + "/metrics", headers={"X-TARN-Token": GATEWAY_TOKEN}, timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("tarn_authz_decisions_total{"))


GATEWAY_SITE = """<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <property><name>gateway.host</name><value>127.0.0.1</value></property>
  <property><name>gateway.port</name><value>{port}</value></property>
  <property><name>gateway.path</name><value>gateway</value></property>
  <property><name>ssl.enabled</name><value>false</value></property>
  <property><name>gateway.hadoop.kerberos.secured</name><value>false</value></property>
  <property><name>gateway.websocket.feature.enabled</name><value>false</value></property>
  <property><name>gateway.webshell.feature.enabled</name><value>false</value></property>
  <property><name>gateway.cluster.config.monitor.ambari.enabled</name><value>false</value></property>
  <property><name>gateway.cluster.config.monitor.cm.enabled</name><value>false</value></property>
  <property><name>gateway.remote.config.monitor.client</name><value></value></property>
  <property><name>gateway.topology.redeploy.requires.changes</name><value>false</value></property>
</configuration>
"""

LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <File name="file" fileName="{log}" append="true">
      <PatternLayout pattern="%d{{ISO8601}} %-5p %c{{1}} (%t) %m%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="io.tarn.knox" level="debug"/>
    <Logger name="org.apache.knox.gateway.ha" level="info"/>
    <Logger name="org.apache.zookeeper" level="warn"/>
    <Logger name="org.apache.curator" level="warn"/>
    <Root level="info"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


def topology(zk_ensemble: str, zk_namespace: str, authz_url: str, *, cache_ttl_ms: int = 1000,
             preauth_addresses: str = "127.0.0.1", authz_params: Optional[Dict[str, str]] = None) -> str:
    """HeaderPreAuth (trusted only from ``preauth_addresses``) stands in for LDAP or Kerberos: it names
    the user and groups; the rest is the production topology of deploy/knox/topologies/tarn.xml.
    ``authz_params``: more TarnAuthz provider params."""
    more = "".join(f"\n      <param><name>{k}</name><value>{v}</value></param>" for k, v in (authz_params or {}).items())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<topology>
  <gateway>
    <provider>
      <role>federation</role>
      <name>HeaderPreAuth</name>
      <enabled>true</enabled>
      <param><name>preauth.validation.method</name><value>preauth.ip.validation</value></param>
      <param><name>preauth.ip.addresses</name><value>{preauth_addresses}</value></param>
      <param><name>preauth.custom.header</name><value>{USER_HEADER}</value></param>
      <param><name>preauth.custom.group.header</name><value>{GROUPS_HEADER}</value></param>
    </provider>
    <provider>
      <role>identity-assertion</role>
      <name>Default</name>
      <enabled>true</enabled>
    </provider>
    <provider>
      <role>authorization</role>
      <name>TarnAuthz</name>
      <enabled>true</enabled>
      <param><name>authz.url</name><value>{authz_url}</value></param>
      <param><name>authz.cache.ttl.ms</name><value>{cache_ttl_ms}</value></param>
      <param><name>authz.timeout.ms</name><value>1000</value></param>{more}
    </provider>
    <provider>
      <role>ha</role>
      <name>HaProvider</name>
      <enabled>true</enabled>
      <param>
        <name>TRITON</name>
        <value>enabled=true;maxFailoverAttempts=3;failoverSleep=100;enableLoadBalancing=true;zookeeperEnsemble={zk_ensemble};zookeeperNamespace={zk_namespace}</value>
      </param>
    </provider>
  </gateway>
  <service>
    <role>TRITON</role>
  </service>
</topology>
"""


class KnoxGateway:
    """A Knox gateway home in ``home`` (conf, data/services with only TRITON, the master secret,
    the gateway token as an alias), run from the Maven Central jars plus our extension."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/gateway"
        self.log_path = home / "logs" / "gateway.log"
        self.out_path = home / "logs" / "gateway.out"
        self.proc: Optional[subprocess.Popen] = None
        self.startup_s: Optional[float] = None

    def _classpath(self) -> str:
        return os.pathsep.join([str(EXTENSION_JAR), str(KNOX_LIB / "*")])

    def _java(self, main: str, *args: str) -> List[str]:
        return [JAVA, "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-DGATEWAY_HOME={self.home}", f"-Dlog4j.configurationFile={self.home / 'conf' / 'gateway-log4j2.xml'}",
                "--add-opens=java.base/java.lang=ALL-UNNAMED", "--add-exports=java.base/sun.security.x509=ALL-UNNAMED",
                "--add-exports=java.base/sun.security.pkcs=ALL-UNNAMED", "--add-opens=java.base/java.util=ALL-UNNAMED",
                "-cp", self._classpath(), main, *args]

    def prepare(self, topologies: Dict[str, str], aliases: Optional[Dict[str, str]] = None) -> None:
        """``aliases``: more topology aliases (name -> value), e.g. the Triton key tarn.gateway.key."""
        dashed = sorted(alias for alias, value in (aliases or {}).items() if value.startswith("-"))
        if dashed:  # knoxcli reads such a value as an option and prints only its usage
            raise ValueError(f"knoxcli create-alias refuses a --value that starts with '-': {dashed}")
        for sub in ("conf/topologies", "conf/descriptors", "conf/shared-providers", "data/services", "data/deployments", "data/security/keystores", "logs"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        (self.home / "conf" / "gateway-site.xml").write_text(GATEWAY_SITE.format(port=self.port))
        (self.home / "conf" / "gateway-log4j2.xml").write_text(LOG4J2.format(log=self.log_path))
        shutil.copytree(SERVICE_DEFINITION, self.home / "data" / "services" / "triton", dirs_exist_ok=True)
        for name, text in topologies.items():
            (self.home / "conf" / "topologies" / f"{name}.xml").write_text(text)
        self._knoxcli("create-master", "--master", MASTER_SECRET, "--force")
        self._identity_keystore()
        for name in topologies:
            self._knoxcli("create-alias", "tarn.authz.gateway.token", "--cluster", name, "--value", GATEWAY_TOKEN)
            for alias, value in (aliases or {}).items():
                self._knoxcli("create-alias", alias, "--cluster", name, "--value", value)

    def _identity_keystore(self) -> None:
        # Knox 2.0 cannot make its self-signed certificate on Java 17 (it reaches into
        # sun.security.x509), and makes one even with SSL off: give it one made by keytool.
        keystore = self.home / "data" / "security" / "keystores" / "gateway.jks"
        if keystore.exists():
            return
        keytool = str(Path(JAVA).parent / "keytool")
        result = subprocess.run([keytool, "-genkeypair", "-alias", "gateway-identity", "-keyalg", "RSA", "-keysize", "2048",
                                 "-dname", "CN=127.0.0.1", "-validity", "3650", "-keystore", str(keystore),
                                 "-storetype", "JKS", "-storepass", MASTER_SECRET, "-keypass", MASTER_SECRET],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"keytool failed: {result.stdout}{result.stderr}")

    def _knoxcli(self, *args: str) -> None:
        result = subprocess.run(self._java("org.apache.knox.gateway.util.KnoxCLI", *args), capture_output=True,
                                text=True, timeout=300, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"knoxcli {args[0]} failed ({result.returncode}):\n{result.stdout[-2000:]}\n"
                               f"{result.stderr[-2000:]}\n{tarnstack.tail(self.log_path)}")

    def start(self, ready_path: str, headers: Dict[str, str], timeout_s: float = 240.0) -> "KnoxGateway":
        started = time.monotonic()
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(self._java("org.apache.knox.gateway.GatewayServer"), stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                         cwd=self.home)

        def ready() -> bool:
            try:
                return httpx.get(self.url + ready_path, headers=headers, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            tarnstack.wait_until(ready, "the Knox gateway", self.out_path, self.proc, timeout_s=timeout_s)
        except tarnstack.StackError as exc:
            raise tarnstack.StackError(f"{exc}\ngateway.log tail:\n{tarnstack.tail(self.log_path, 60)}") from None
        self.startup_s = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.proc is not None:
            tarnstack.stop_pid(self.proc.pid)
            self.proc = None
