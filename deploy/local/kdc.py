"""A Kerberos KDC of the stack's own on loopback: MIT krb5kdc (Debian's krb5-kdc), a realm,
the principals and keytabs of every service and of the users alice and bob.

Everything lives under RUN_DIR/kerberos: krb5.conf (clients point KRB5_CONFIG and
-Djava.security.krb5.conf at it), kdc.conf, the database and keytabs/. Nothing in /etc is
read or written. Standard library only, like tarnstack.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

REALM = "TARN.TEST"
# The one-JVM minicluster runs NameNode, DataNode, ResourceManager and NodeManagers in one
# process, and Hadoop's login user is JVM-wide (UserGroupInformation): every RPC server
# there answers as the last daemon that logged in. So they share one service principal,
# as Hadoop's own secure minicluster tests do; a real cluster has one per daemon and host
# (docs/kerberos.md).
KEYTABS: Dict[str, List[str]] = {
    "hadoop": ["hadoop/localhost"],
    # HTTP/<NodeManager>: a tarn-am with --am-spnego-principal HTTP/_HOST on either node.
    "http": ["HTTP/localhost", "HTTP/tarn-nm1", "HTTP/tarn-nm2"],
    "zookeeper": ["zookeeper/localhost"],
    "tarn": ["tarn/localhost"],
    "gateway-sync": ["tarn-gateway-sync/localhost"],
    "authz": ["tarn-authz/localhost"],
    "knox": ["knox/localhost"],
    "alice": ["alice"],
    "bob": ["bob"],
}
KDC_BINARIES = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


class KdcError(RuntimeError):
    pass


def principal(name: str) -> str:
    return f"{name}@{REALM}"


def krb5_conf(port: int, ticket_lifetime: str = "10h") -> str:
    # udp_preference_limit=1: TCP only, so Java and MIT clients take the same path.
    # Host-based service names are canonicalized through /etc/hosts (no DNS for realms or
    # KDCs): a client of http://127.0.0.1:PORT or 127.0.0.1:PORT asks for HTTP/localhost or
    # zookeeper/localhost, as Java's clients (which canonicalize too) do.
    return "\n".join([
        "[libdefaults]",
        f"  default_realm = {REALM}",
        "  dns_lookup_realm = false",
        "  dns_lookup_kdc = false",
        "  dns_canonicalize_hostname = true",
        "  rdns = true",
        "  udp_preference_limit = 1",
        f"  ticket_lifetime = {ticket_lifetime}",
        "  renew_lifetime = 7d",
        "  forwardable = true",
        "",
        "[realms]",
        f"  {REALM} = {{",
        f"    kdc = 127.0.0.1:{port}",
        "  }",
        "",
        "[domain_realm]",
        *(f"  {host} = {REALM}" for host in ("localhost", "127.0.0.1", "tarn-nm1", "tarn-nm2")),
        "",
    ])


def kdc_conf(port: int, db_dir: Path) -> str:
    return "\n".join([
        "[kdcdefaults]",
        f"  kdc_listen = 127.0.0.1:{port}",
        f"  kdc_tcp_listen = 127.0.0.1:{port}",
        "",
        "[realms]",
        f"  {REALM} = {{",
        f"    database_name = {db_dir / 'principal'}",
        f"    key_stash_file = {db_dir / 'stash'}",
        f"    acl_file = {db_dir / 'kadm5.acl'}",
        "    max_life = 1d",
        "    max_renewable_life = 7d",
        "    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal",
        "  }",
        "",
        "[logging]",
        "  kdc = STDERR",
        "",
    ])


class Kdc:
    """Lays out the realm in ``directory`` and says how to start krb5kdc there."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.krb5_conf = self.dir / "krb5.conf"
        self.kdc_conf = self.dir / "kdc.conf"
        self.keytab_dir = self.dir / "keytabs"

    def env(self) -> Dict[str, str]:
        return dict(os.environ, KRB5_CONFIG=str(self.krb5_conf), KRB5_KDC_PROFILE=str(self.kdc_conf),
                    KRB5CCNAME=f"FILE:{self.dir / 'ccache-setup'}")

    def keytab(self, name: str) -> Path:
        return self.keytab_dir / f"{name}.keytab"

    def create(self, port: int) -> None:
        missing = [b for b in KDC_BINARIES if not Path(_sbin(b)).exists()]
        if missing:
            raise KdcError(f"the Kerberos tools {missing} are missing; deploy/local/install-deps installs "
                           "krb5-kdc, krb5-admin-server and krb5-user")
        if self.dir.exists():
            shutil.rmtree(self.dir)
        db_dir = self.dir / "db"
        db_dir.mkdir(parents=True)
        self.keytab_dir.mkdir()
        (db_dir / "kadm5.acl").write_text("")
        self.krb5_conf.write_text(krb5_conf(port))
        self.kdc_conf.write_text(kdc_conf(port, db_dir))
        # The master key only protects the database in this run dir; a random one each time.
        self._run(["kdb5_util", "create", "-s", "-r", REALM, "-P", os.urandom(16).hex()])
        queries = []
        for keytab, names in KEYTABS.items():
            queries += [f"addprinc -randkey {principal(n)}" for n in names]
            # -norandkey: export the keys as created, so one principal may sit in two keytabs.
            queries.append(f"ktadd -norandkey -k {self.keytab(keytab)} " + " ".join(principal(n) for n in names))
        for query in queries:
            self._run(["kadmin.local", "-r", REALM, "-q", query])

    def command(self) -> List[str]:
        return [_sbin("krb5kdc"), "-n", "-r", REALM]

    def can_log_in(self) -> bool:
        """alice gets a ticket with her keytab (the KDC answers)."""
        result = subprocess.run(["kinit", "-k", "-t", str(self.keytab("alice")), principal("alice")],
                                env=self.env(), capture_output=True, text=True, timeout=10)
        return result.returncode == 0

    def client_env(self) -> Dict[str, str]:
        """What stack.env exports: where the realm and the keytabs are, and a ticket cache
        of the stack's own (`kinit` after `source stack.env` leaves the user's alone)."""
        env = {"KRB5_CONFIG": str(self.krb5_conf), "KRB5CCNAME": f"FILE:{self.dir / 'ccache'}",
               "TARN_KRB5_REALM": REALM, "TARN_KEYTAB_DIR": str(self.keytab_dir)}
        for name in KEYTABS:
            env[f"TARN_KEYTAB_{name.upper().replace('-', '_')}"] = str(self.keytab(name))
        return env

    def _run(self, argv: List[str]) -> None:
        argv = [_sbin(argv[0])] + argv[1:]
        result = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=60)
        if result.returncode != 0 or "error" in result.stderr.lower():
            raise KdcError(f"{' '.join(argv[:3])} failed ({result.returncode}): {result.stderr.strip()}")


def _sbin(binary: str) -> str:
    return shutil.which(binary) or str(Path("/usr/sbin") / binary)
