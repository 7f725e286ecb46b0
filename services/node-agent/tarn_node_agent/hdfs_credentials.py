"""Which credential the node-agent shows one HDFS file system, decided purely: the delegation
token YARN put in $HADOOP_TOKEN_FILE_LOCATION for that file system, else a Kerberos ticket,
else simple auth. On a Kerberized cluster (core-site.xml's hadoop.security.authentication)
with neither token nor ticket, WebHDFS would only answer 401: the error says instead which
file system lacks a token and which variable to look at."""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

from .errors import TokenFileError
from .tokens import HDFS_TOKEN_KINDS, HadoopToken

TOKEN_ENV = "HADOOP_TOKEN_FILE_LOCATION"
TICKET_ENVS = "KRB5CCNAME or KRB5_CLIENT_KTNAME"
NAMENODE_RPC_PORT = "8020"  # Hadoop's default for an hdfs:// authority without a port


@dataclass(frozen=True)
class CredentialsAtHand:
    """What the container holds for one file system (``authority``: hdfs://<authority>/...)."""
    authority: str
    purpose: str  # what is read there, for the message: "the model repository", ...
    token_file: Optional[str]  # $HADOOP_TOKEN_FILE_LOCATION
    tokens: Sequence[HadoopToken]
    has_ticket: bool
    kerberized: bool


def token_for(tokens: Sequence[HadoopToken], authority: str,
              resolve: Callable[[str], str] = socket.gethostbyname) -> Optional[HadoopToken]:
    """The HDFS delegation token whose service is this file system: ``host:port`` as given,
    the NameNode's ``ip:port`` (what Hadoop writes by default) or ``ha-hdfs:<nameservice>``.
    Without an authority (the default file system) the first HDFS token."""
    hdfs = [t for t in tokens if t.kind in HDFS_TOKEN_KINDS]
    if not authority:
        return hdfs[0] if hdfs else None
    host, _, port = authority.partition(":")
    wanted = {authority, f"ha-hdfs:{host}", f"{_ip(host, resolve)}:{port or NAMENODE_RPC_PORT}"}
    for token in hdfs:
        token_host, _, token_port = token.service.partition(":")
        if token.service in wanted or f"{_ip(token_host, resolve)}:{token_port}" in wanted:
            return token
    return None


def choose(requested: str, at_hand: CredentialsAtHand) -> Tuple[str, Optional[HadoopToken]]:
    """(``token`` | ``kerberos`` | ``simple``, the token) for ``requested`` (a NodeAgentSettings
    hdfs_auth); raises TokenFileError when the file system cannot be authenticated to."""
    if requested in ("simple", "kerberos"):
        return requested, None
    token = token_for(at_hand.tokens, at_hand.authority)
    if token is not None:
        return "token", token
    if requested == "token" or (at_hand.kerberized and not at_hand.has_ticket):
        raise TokenFileError(missing_token_message(requested, at_hand))
    if at_hand.has_ticket:
        return "kerberos", None
    # Not Kerberized: any HDFS token does no harm, none is needed.
    spare = token_for(at_hand.tokens, "")
    return ("token", spare) if spare is not None else ("simple", None)


def missing_token_message(requested: str, at_hand: CredentialsAtHand) -> str:
    file_system = f"hdfs://{at_hand.authority}" if at_hand.authority else "the default file system"
    why = ("hdfs_auth is 'token'" if requested == "token" else
           "the cluster is Kerberized (hadoop.security.authentication=kerberos in $HADOOP_CONF_DIR/core-site.xml) "
           f"and no Kerberos ticket is configured ({TICKET_ENVS})")
    if not at_hand.token_file:
        return (f"no HDFS delegation token for {file_system} ({at_hand.purpose}): {TOKEN_ENV} is not set and {why}; "
                "run the agent in a container of `tarn submit --principal P --keytab K` (YARN sets "
                f"{TOKEN_ENV}), or give it a ticket ({TICKET_ENVS})")
    held = sorted({t.service for t in at_hand.tokens if t.kind in HDFS_TOKEN_KINDS})
    return (f"no HDFS delegation token for {file_system} ({at_hand.purpose}) in {TOKEN_ENV}={at_hand.token_file} "
            f"(its HDFS tokens: {', '.join(held) or 'none'}) and {why}; `tarn submit` asks YARN for a token for "
            "each file system --model-repository and --secrets name: give both as hdfs://host:port of a NameNode "
            f"the submitting user can reach, or give the agent a ticket ({TICKET_ENVS})")


def _ip(host: str, resolve: Callable[[str], str]) -> str:
    try:
        return resolve(host)
    except (OSError, UnicodeError):
        return host
