"""What `demo up --kerberos` (`make demo KERBEROS=1`) does differently, on the Kerberized stack
(`stack up --hadoop --kerberos`: a real MIT KDC, SASL ZooKeeper, the minicluster in secure mode):

- HDFS: the superuser (hadoop/localhost) makes /user/alice; alice uploads the models and
  writes the credential file there with her own ticket; nothing is written as an unchecked user.
- `tarn submit/stop --principal alice@TARN.TEST --keytab alice.keytab`: the application runs as alice.
- gateway-sync logs in to ZooKeeper with its own keytab and writes its znodes with `sasl:` ACLs
  (itself: all; Knox's principal: read); the demo reads them as Knox does, with Knox's keytab.
- Knox runs the shipped Kerberos topology (SPNEGO through HadoopAuth, demo_knox.py); alice and
  bob present their own tickets there.
- HAProxy keeps its basic-auth users: docs/kerberos.md ("End users at HAProxy") says why.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Mapping

REALM = "TARN.TEST"
ZK_NAMESPACE = "/services/triton"


def principal(name: str) -> str:
    return f"{name}@{REALM}"


@contextlib.contextmanager
def as_principal(env: Mapping[str, str], keytab: str, ccache: Path) -> Iterator[None]:
    """This process is a Kerberos client as ``keytab``'s principal (MIT Kerberos reads these
    variables whenever it gets credentials: a ticket from the keytab into a cache of its own)."""
    keys = ("KRB5_CONFIG", "KRB5CCNAME", "KRB5_CLIENT_KTNAME")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(KRB5_CONFIG=env["KRB5_CONFIG"], KRB5CCNAME=f"FILE:{ccache}",
                      KRB5_CLIENT_KTNAME=env[f"TARN_KEYTAB_{keytab.upper().replace('-', '_')}"])
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def alice_env(env: Mapping[str, str], demo_dir: Path) -> Dict[str, str]:
    """alice's client environment for `tarn` and Hadoop's CredentialShell: her keytab and a
    ticket cache kinit'ed from it (the JVM tools read the cache)."""
    cache = demo_dir / "ccache-alice"
    out = dict(env, KRB5CCNAME=f"FILE:{cache}", KRB5_CLIENT_KTNAME=env["TARN_KEYTAB_ALICE"])
    result = subprocess.run(["kinit", "-k", "-t", env["TARN_KEYTAB_ALICE"], principal("alice")], env=out,
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"kinit as alice failed: {result.stderr.strip()}")
    return out


def login_args(env: Mapping[str, str]) -> List[str]:
    return ["--principal", principal("alice"), "--keytab", env["TARN_KEYTAB_ALICE"]]


def prepare_home(webhdfs_url: str, env: Mapping[str, str], demo_dir: Path, home: str) -> None:
    """/user/alice, made by the HDFS superuser and given to alice (skein stages there too)."""
    with as_principal(env, "hadoop", demo_dir / "ccache-hadoop"):
        admin = webhdfs_client(webhdfs_url)
        admin.makedirs(home, permission="755")
        admin.set_owner(home, owner="alice")


def webhdfs_client(webhdfs_url: str):
    """A WebHDFS client with SPNEGO, as whoever ``as_principal`` made this process."""
    from hdfs.ext.kerberos import KerberosClient
    return KerberosClient(webhdfs_url, mutual_auth="OPTIONAL")


def gateway_sync_env(env: Mapping[str, str]) -> Dict[str, str]:
    """gateway-sync's own Kerberos login to ZooKeeper and the ACL of what it writes."""
    return {"KRB5_CLIENT_KTNAME": env["TARN_KEYTAB_GATEWAY_SYNC"],
            "KRB5CCNAME": "MEMORY:tarn-gateway-sync",
            "TARN_GATEWAY_SYNC_ZK_SASL_MECHANISM": "GSSAPI",
            "TARN_GATEWAY_SYNC_ZK_ACL": f"sasl:{principal('tarn-gateway-sync/localhost')}:cdrwa,"
                                        f"sasl:{principal('knox/localhost')}:r"}


def zookeeper_reader(env: Mapping[str, str]):
    """A kazoo client logged in as Knox's principal (what the znodes' ACL lets read); start it
    inside ``as_principal(env, "knox", ...)``."""
    from kazoo.client import KazooClient
    return KazooClient(hosts=env["ZK_HOSTS"], sasl_options={"mechanism": "GSSAPI"})


def knox_jaas(env: Mapping[str, str], demo_dir: Path) -> Path:
    """The JAAS `Client` section Knox's ZooKeeper client (Curator) logs in with: Knox's keytab."""
    path = demo_dir / "knox-jaas.conf"
    path.write_text("Client {\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n"
                    f"  keyTab=\"{env['TARN_KEYTAB_KNOX']}\"\n  storeKey=true\n  useTicketCache=false\n"
                    f"  principal=\"{principal('knox/localhost')}\";\n}};\n")
    return path
