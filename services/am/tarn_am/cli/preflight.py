"""`tarn submit`'s check before YARN: the model repository and the credential file, read on
HDFS and judged by the rules the node-agent applies (tarn_shared.repository_layout,
tarn_shared.jceks), so a deployment every container would refuse is refused here, at once,
in one line (exit 2), instead of as a crash loop minutes later.

It refuses only on evidence: a path that does not exist, a file where a directory belongs,
an invalid layout, a credential file that does not open with the password the containers
will get. What it cannot check from this host (WebHDFS unreachable or refusing, Kerberos
without httpx-gssapi) it names on stderr, and the submit goes on: the nodes may see what
this host cannot. A local absolute --model-repository is the nodes' NFS mount, not
necessarily this host's: it is not checked here (the node-agent checks it in place).
"""
from __future__ import annotations

import getpass
import posixpath
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from tarn_shared.errors import ConfigError
from tarn_shared.hadoop_conf import kerberos_enabled, read_hadoop_conf, webhdfs_urls_from_conf
from tarn_shared.jceks import (PASSWORD_ENV, CredentialFileError, StorePasswordError, decode_keystore,
                               store_password)
from tarn_shared.locations import Location, parse_credential_location, parse_location
from tarn_shared.repository_layout import (LAYOUT_DEPTH, RemoteEntry, RepositoryError, checked_relative,
                                           entry_from_status, is_hidden, layout_problems)

from .options import SubmitOptions
from .spec import agent_environment
from .webhdfs import HdfsNotFound, WebHdfsError, WebHdfsReader, spnego_auth

# The node-agent's own settings for reaching HDFS, when --agent-env gives them.
AGENT_WEBHDFS_URL = "TARN_NODE_AGENT_WEBHDFS_URL"
AGENT_HDFS_USER = "TARN_NODE_AGENT_HDFS_USER"
SECRETS_LIMIT_BYTES = 16 << 20  # the most the node-agent reads of a credential file


class PreflightError(ConfigError):
    """What every container would refuse; names each flag and what is wrong with it."""


@dataclass(frozen=True)
class Check:
    """One location to look at on HDFS, and the flag that named it."""

    flag: str
    location: Location

    @property
    def uri(self) -> str:
        return self.location.uri


@dataclass(frozen=True)
class Facts:
    """What HDFS said of a location: its FileStatus type (None: it does not exist), and a
    repository's top two levels or a credential file's bytes."""

    kind: Optional[str]
    entries: Tuple[RemoteEntry, ...] = ()
    data: bytes = b""


# ---------------------------------------------------------------- what to check, pure

def checks_for(options: SubmitOptions) -> List[Check]:
    checks = []
    repository = parse_location(options.model_repository)
    if repository.hdfs_path is not None:
        checks.append(Check("--model-repository", repository))
    if options.secrets:
        checks.append(Check("--secrets", parse_credential_location(options.secrets)))
    return checks


def webhdfs_for(check: Check, container_env: Mapping[str, str], conf: Mapping[str, str]) -> Optional[str]:
    """The WebHDFS URL(s) the node-agents will use for this location."""
    return container_env.get(AGENT_WEBHDFS_URL) or webhdfs_urls_from_conf(conf, check.location.authority)


def hdfs_user(container_env: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """Who reads: the agents' configured user, else the submitter (who owns the application)."""
    return container_env.get(AGENT_HDFS_USER) or environ.get("HADOOP_USER_NAME") or getpass.getuser()


def password_hint(container_env: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """Which password was tried and why: the one the containers will get."""
    if container_env.get(PASSWORD_ENV):
        return f"tried the password the containers get ({PASSWORD_ENV} from --agent-env)"
    if environ.get(PASSWORD_ENV):
        return (f"{PASSWORD_ENV} is set here but the containers do not get it: "
                f"add --agent-env {PASSWORD_ENV}=...")
    return f"tried Hadoop's default password \"none\" as the containers will; give the file's with " \
           f"--agent-env {PASSWORD_ENV}=..."


# ---------------------------------------------------------------- verdicts, pure

def repository_verdict(check: Check, facts: Facts, listed: Sequence[str] = ()) -> Optional[str]:
    """``listed``: the models --models names, each of which the repository must hold."""
    where = f"{check.flag} {check.uri}"
    if facts.kind is None:
        return f"{where}: does not exist on HDFS"
    if facts.kind != "DIRECTORY":
        return f"{where}: is a file on HDFS, not a model repository directory"
    models, problems = layout_problems(facts.entries)
    if problems:
        return f"{where}: not a valid Triton model repository: {'; '.join(problems)}"
    absent = sorted(set(listed) - set(models))
    return f"{where}: has no model {', '.join(map(repr, absent))} that --models names" if absent else None


def secrets_verdict(check: Check, facts: Facts, password: str, hint: str) -> Optional[str]:
    where = f"{check.flag} {check.uri}"
    if facts.kind is None:
        return f"{where}: does not exist on HDFS"
    if facts.kind != "FILE":
        return f"{where}: is a directory on HDFS, not a credential file"
    try:
        decode_keystore(facts.data, password, check.uri)
    except StorePasswordError as exc:
        return f"{check.flag}: {exc}; {hint}"
    except CredentialFileError as exc:
        return f"{check.flag}: {exc}"
    return None


# ---------------------------------------------------------------- reading HDFS

def repository_facts(reader: WebHdfsReader, path: str) -> Facts:
    """The root's type, and its entries down to the version directories."""
    try:
        kind = reader.status(path).get("type")
    except HdfsNotFound:
        return Facts(None)
    if kind != "DIRECTORY":
        return Facts(kind)
    entries: List[RemoteEntry] = []
    pending: List[Tuple[str, int]] = [("", 1)]
    while pending:
        relative, depth = pending.pop()
        for status in reader.list_dir(posixpath.join(path, relative) if relative else path):
            name = status.get("pathSuffix", "")
            entry = entry_from_status(checked_relative(posixpath.join(relative, name) if relative else name), status)
            entries.append(entry)
            if entry.is_dir and depth < LAYOUT_DEPTH and not is_hidden(entry.path):
                pending.append((entry.path, depth + 1))
    return Facts(kind, tuple(entries))


def secrets_facts(reader: WebHdfsReader, path: str) -> Facts:
    try:
        kind = reader.status(path).get("type")
    except HdfsNotFound:
        return Facts(None)
    return Facts(kind, data=reader.read(path, SECRETS_LIMIT_BYTES) if kind == "FILE" else b"")


Reader = Callable[[str, str, bool], WebHdfsReader]  # (urls, user, kerberos) -> reader


def open_reader(urls: str, user: str, kerberos: bool, login=None) -> WebHdfsReader:
    """``login``: a kerberos_login.KeytabLogin (--principal/--keytab), else the ticket cache."""
    if not kerberos:
        return WebHdfsReader.open(urls, user)
    if login is not None:
        from .kerberos_login import gssapi_credentials
        auth = spnego_auth(gssapi_credentials(login))
    else:
        auth = spnego_auth()
    if auth is None:
        raise WebHdfsError("the cluster uses Kerberos and SPNEGO needs httpx-gssapi "
                           "(pip install 'tarn-am[kerberos]')")
    return WebHdfsReader.open(urls, user, auth)


# ---------------------------------------------------------------- the check

def check_before_submit(options: SubmitOptions, environ: Mapping[str, str],
                        warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                        reader: Reader = open_reader) -> List[str]:
    """Raises PreflightError naming every problem; returns (and warns about) what it could
    not check."""
    checks = checks_for(options)
    if not checks:
        return []
    container_env: Dict[str, str] = agent_environment(options)
    conf = read_hadoop_conf(environ.get("HADOOP_CONF_DIR"))
    user = hdfs_user(container_env, environ)
    problems: List[str] = []
    unchecked: List[str] = []
    listed = sorted(options.model_plan.models) if options.model_plan else []
    for check in checks:
        urls = webhdfs_for(check, container_env, conf)
        if not urls:
            unchecked.append(f"{check.flag} {check.uri}: $HADOOP_CONF_DIR names no WebHDFS address "
                             "(dfs.namenode.http-address)")
            continue
        try:
            with reader(urls, user, kerberos_enabled(conf)) as hdfs:
                verdict = _verdict(check, hdfs, container_env, environ, listed)
        except WebHdfsError as exc:
            unchecked.append(f"{check.flag} {check.uri}: {exc}")
            continue
        except RepositoryError as exc:  # a name in the listing that no agent would stage
            verdict = f"{check.flag} {check.uri}: {exc}"
        if verdict:
            problems.append(verdict)
    for line in unchecked:
        warn(f"tarn submit: not checked before submitting: {line}")
    if problems:
        raise PreflightError("; ".join(problems))
    return unchecked


def _verdict(check: Check, hdfs: WebHdfsReader, container_env: Mapping[str, str],
             environ: Mapping[str, str], listed: Sequence[str]) -> Optional[str]:
    path = check.location.hdfs_path or "/"
    if check.flag == "--secrets":
        return secrets_verdict(check, secrets_facts(hdfs, path), store_password(container_env),
                               password_hint(container_env, environ))
    return repository_verdict(check, repository_facts(hdfs, path), listed)

