"""A real Redis 7 with TARN's shipped ACL users (deploy/redis/*.conf, placeholders filled),
on a plain and a TLS port: the fixture ``acl_redis`` gives one URL per user."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, Iterator, NamedTuple, Optional

import pytest
import redis
from redis import exceptions as redis_errors

from tests.support.polling import wait_for
from tests.support.ports import free_ports
from tests.support.processes import terminate

USERS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "redis"
ADMIN_PASSWORD = "admin-secret-1"
AGENT_DEPLOYMENT = "aclagent"  # the agent test's deployment
AM_DEPLOYMENT = "aclam"  # the tarn-am test's deployment (its agents too)


class AclUser(NamedTuple):
    file: str
    name: str
    password: str
    deployment: Optional[str] = None  # filled into DEPLOYMENT


USERS = {  # acl_redis key -> user
    "gateway-sync": AclUser("gateway-sync.conf", "tarn-gateway-sync", "gw-secret-1"),
    "authz": AclUser("authz.conf", "tarn-authz", "authz-secret-1"),
    "agent": AclUser("node-agent.conf", f"tarn-agent-{AGENT_DEPLOYMENT}", "agent-secret-1", AGENT_DEPLOYMENT),
    "am-agent": AclUser("node-agent.conf", f"tarn-agent-{AM_DEPLOYMENT}", "agent-secret-2", AM_DEPLOYMENT),
    "am": AclUser("am.conf", f"tarn-am-{AM_DEPLOYMENT}", "am-secret-1", AM_DEPLOYMENT),
}


def _certificates(folder: Path) -> Dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, made by the real openssl."""
    paths = {name: folder / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key")}
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tarn-test-ca",
        "-keyout", str(paths["ca-key"]), "-out", str(paths["ca"]))
    request = folder / "server.csr"
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(paths["server-key"]),
        "-out", str(request))
    extensions = folder / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(request), "-CA", str(paths["ca"]), "-CAkey", str(paths["ca-key"]),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(paths["server"]))
    return paths


def _user_file(user: AclUser) -> str:
    text = (USERS_DIR / user.file).read_text()
    if user.deployment:
        text = text.replace("DEPLOYMENT", user.deployment)
    return text.replace(">PASSWORD", f">{user.password}")


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory) -> Iterator[Dict[str, str]]:
    """URLs by key of USERS (plain TCP; ``<key>-tls`` over TLS), and ``admin``/``admin-tls``."""
    folder = tmp_path_factory.mktemp("redis-acl")
    certs = _certificates(folder)
    lines = [f"user default on >{ADMIN_PASSWORD} ~* &* +@all"]
    for key, user in USERS.items():
        (folder / f"{key}.conf").write_text(_user_file(user))
        lines.append(f"include {folder / f'{key}.conf'}")
    (folder / "redis.conf").write_text("\n".join(lines) + "\n")
    plain, tls = free_ports(2)
    log = open(folder / "redis.log", "wb")
    proc = subprocess.Popen(["redis-server", str(folder / "redis.conf"), "--bind", "127.0.0.1", "--port", str(plain),
                             "--tls-port", str(tls), "--tls-cert-file", str(certs["server"]),
                             "--tls-key-file", str(certs["server-key"]), "--tls-ca-cert-file", str(certs["ca"]),
                             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"],
                            stdout=log, stderr=subprocess.STDOUT)
    admin = redis.Redis(port=plain, password=ADMIN_PASSWORD)
    try:
        wait_for(lambda: proc.poll() is None and admin.ping(), 20, "redis with ACL users",
                 ignore=(redis_errors.ConnectionError,))
        ca = f"ssl_ca_certs={certs['ca']}&ssl_cert_reqs=required"
        urls = {"admin": f"redis://default:{ADMIN_PASSWORD}@127.0.0.1:{plain}/0",
                "admin-tls": f"rediss://default:{ADMIN_PASSWORD}@127.0.0.1:{tls}/0?{ca}"}
        for key, user in USERS.items():
            urls[key] = f"redis://{user.name}:{user.password}@127.0.0.1:{plain}/0"
            urls[f"{key}-tls"] = f"rediss://{user.name}:{user.password}@127.0.0.1:{tls}/0?{ca}"
        yield urls
    finally:
        admin.close()
        terminate(proc)
        log.close()


def denied_to(admin: redis.Redis, key: str) -> list:
    """What Redis' ACL LOG recorded as refused to the user of ``key``."""
    return [entry for entry in admin.acl_log() if entry.get("username") == USERS[key].name]
