"""Knox for `demo up --kerberos`: the shipped Kerberos topology (deploy/knox/topologies/
tarn-kerberos.xml, Knox's HadoopAuth provider: SPNEGO accepted with the HTTP/localhost keytab)
with its values set for the local stack, a Knox 2.0 gateway home made by the Knox tests' own
helper (tests/knox/support.py: the Maven Central jars plus our extension, built by
deploy/knox/build), and the SPNEGO client side: a `Negotiate` header for a user's keytab."""
from __future__ import annotations

import base64
import secrets
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Mapping

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOPOLOGY = ROOT / "deploy" / "knox" / "topologies" / "tarn-kerberos.xml"
TOPOLOGY_NAME = "tarn"
SPNEGO = "1.3.6.1.5.5.2"


def kerberos_topology(realm: str, http_keytab: Path, authz_url: str, zk_hosts: str, zk_namespace: str,
                      ranger_service: str) -> str:
    """tarn-kerberos.xml with the stack's principal, keytab, realm, authz and ZooKeeper:
    every other line is the file a real cluster installs."""
    tree = ET.parse(TOPOLOGY)
    escaped = realm.replace(".", r"\.")
    values = {
        ("HadoopAuth", "hadoop.auth.config.kerberos.principal"): f"HTTP/localhost@{realm}",
        ("HadoopAuth", "hadoop.auth.config.kerberos.keytab"): str(http_keytab),
        ("HadoopAuth", "hadoop.auth.config.kerberos.name.rules"):
            f"RULE:[1:$1@$0](.*@{escaped})s/@.*// RULE:[2:$1@$0](.*@{escaped})s/@.*// DEFAULT",
        ("TarnAuthz", "authz.url"): authz_url,
        ("HaProvider", "TRITON"): "enabled=true;maxFailoverAttempts=3;failoverSleep=100;enableLoadBalancing=true;"
                                  f"zookeeperEnsemble={zk_hosts};zookeeperNamespace={zk_namespace}",
    }
    found = set()
    for provider in tree.getroot().iter("provider"):
        name = provider.findtext("name")
        if name == "HadoopGroupProvider":
            # The stack has no LDAP or Unix accounts for alice and bob (Hadoop's group mapping
            # would find no groups and warn on each request): Knox's default assertion instead.
            provider.find("name").text = "Default"
        for param in provider.iter("param"):
            key = (name, param.findtext("name"))
            if key in values:
                param.find("value").text = values[key]
                found.add(key)
    authz = next(p for p in tree.getroot().iter("provider") if p.findtext("name") == "TarnAuthz")
    extra = ET.SubElement(authz, "param")
    ET.SubElement(extra, "name").text = "authz.ranger.service"
    ET.SubElement(extra, "value").text = ranger_service
    missing = set(values) - found
    if missing:
        raise ValueError(f"{TOPOLOGY} lacks the params {sorted(missing)}")
    return ET.tostring(tree.getroot(), encoding="unicode")


def prepare_gateway(home: Path, topology: str, authz_token: str, gateway_key: str):
    """A Knox gateway home (conf, the TRITON service, the master secret, the aliases) ready to
    start; returns tests/knox/support.py's KnoxGateway for it."""
    from tests.knox.support import KnoxGateway, build_knox
    build_knox()  # cached: rebuilds only when the extension's sources changed
    gateway = KnoxGateway(home)
    gateway.prepare({TOPOLOGY_NAME: topology}, aliases={
        "tarn.authz.gateway.token": authz_token, "tarn.gateway.key": gateway_key,
        "hadoop.auth.signature.secret": secrets.token_hex(24)})
    return gateway


def gateway_command(gateway, krb5_conf: str, jaas: Path) -> List[str]:
    """The gateway's java command line with the stack's krb5.conf (never /etc's) and the JAAS
    file its ZooKeeper client logs in with."""
    argv = gateway._java("org.apache.knox.gateway.GatewayServer")
    return [argv[0], f"-Djava.security.krb5.conf={krb5_conf}", f"-Djava.security.auth.login.config={jaas}", *argv[1:]]


def triton_url(gateway) -> str:
    return f"{gateway.url}/{TOPOLOGY_NAME}/triton"


class Spnego:
    """A user's Kerberos credentials from their keytab, in a ticket cache of their own, and a fresh
    SPNEGO `Authorization: Negotiate` header for each request (a token is accepted once)."""

    def __init__(self, principal: str, keytab: Path, ccache: Path, service: str = "HTTP@localhost") -> None:
        import gssapi
        self._gssapi = gssapi
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
        try:
            self.creds = gssapi.Credentials(name=name, usage="initiate",
                                            store={"client_keytab": str(keytab), "ccache": f"FILE:{ccache}"})
        except gssapi.exceptions.GSSError as exc:
            raise RuntimeError(f"no Kerberos ticket for {principal} from {keytab}: {exc}") from None
        self.service = gssapi.Name(service, gssapi.NameType.hostbased_service)

    def header(self) -> Dict[str, str]:
        gssapi = self._gssapi
        context = gssapi.SecurityContext(name=self.service, creds=self.creds, usage="initiate",
                                         mech=gssapi.OID.from_int_seq(SPNEGO))
        return {"Authorization": "Negotiate " + base64.b64encode(context.step()).decode()}


def logins(env: Mapping[str, str], directory: Path, realm: str) -> Dict[str, Spnego]:
    """alice's and bob's SPNEGO logins from the stack's keytabs."""
    return {user: Spnego(f"{user}@{realm}", Path(env[f"TARN_KEYTAB_{user.upper()}"]), directory / f"ccache-{user}")
            for user in ("alice", "bob")}


def infer_as_each_user(url: str, users: Mapping[str, Spnego]) -> List[str]:
    """tritonclient through Knox with each user's ticket: alice allowed, bob 403, no ticket 401.
    Returns what it saw, one line each; RuntimeError names the first answer that differs."""
    import numpy as np
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=url.split("://", 1)[1], network_timeout=60)
    data = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    inputs = [httpclient.InferInput("INPUT0", list(data.shape), "FP32")]
    inputs[0].set_data_from_numpy(data)
    try:
        try:
            output = client.infer("identity", inputs, headers=users["alice"].header()).as_numpy("OUTPUT0")
        except InferenceServerException as exc:
            raise RuntimeError(f"alice's inference through Knox failed: {exc}") from None
        if output is None or output.tolist() != data.tolist():
            raise RuntimeError(f"alice's inference through Knox answered {output!r}, expected {data.tolist()}")
        for who, headers, expected in (("bob", users["bob"].header(), "403"), ("no ticket", {}, "401")):
            try:
                client.infer("identity", inputs, headers=headers)
            except InferenceServerException as exc:
                if exc.status() != expected:
                    raise RuntimeError(f"{who}'s inference through Knox failed with {exc.status()}, "
                                       f"expected {expected}: {exc}") from None
            else:
                raise RuntimeError(f"{who}'s inference through Knox was allowed")
    finally:
        client.close()
    return [f"alice (Knox, SPNEGO): identity({data.tolist()}) = {output.tolist()}  (allowed)",
            "bob   (Knox, SPNEGO): identity(...) -> HTTP 403 Forbidden  (denied by tarn-authz)",
            "no ticket (Knox):     identity(...) -> HTTP 401 (WWW-Authenticate: Negotiate)"]
