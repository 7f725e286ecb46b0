"""How the `tarn` commands reach a deployment: skein's client, the application's id and its
tarn-am's address (HTTP to it, with the token or a Kerberos ticket, is am_http.py's)."""
from __future__ import annotations

import shutil
import time
from functools import lru_cache
from typing import Optional

from tarn_shared.errors import TarnError
from tarn_shared.streams import as_text

from .command_log import CommandLog


class CliError(TarnError):
    """A failure to report in one line and exit 1."""


class Yarn:
    """skein's client for one command: its Java driver starts on first use, with everything it
    prints in the command's log, and stops when the command ends (``close``, called by main)."""

    def __init__(self, log: CommandLog) -> None:
        self.log = log
        self.login = None  # a kerberos_login.KeytabLogin (--principal/--keytab), or None: the ticket cache
        self._client = None

    def client(self):
        if self._client is None:
            self._client = skein_client(self.log, self.login)
        return self._client

    def close(self) -> None:
        # Early, before a long wait (--watch): gRPC's poller thread must not outlive its channels
        # into Ctrl-C and interpreter exit, where it prints epoll errors on the user's terminal.
        if self._client is not None:
            with self.log.capturing_output():
                self._client.close()
            self._client = None


@lru_cache(maxsize=None)
def _client_class():
    import skein  # loaded only by the commands that reach YARN

    class QuietClient(skein.Client):
        __slots__ = ()

        def __del__(self) -> None:
            # skein.Client.__del__ fails (a traceback at exit) on an instance whose constructor
            # raised before starting a driver (no `yarn`, no Java): there is nothing to close.
            if hasattr(self, "_proc"):
                super().__del__()

    return QuietClient


def skein_client(log: CommandLog, login=None):
    if shutil.which("yarn") is None:
        raise CliError("`yarn` is not on PATH: tarn reaches YARN through skein's driver, which needs "
                       "Hadoop's client (`yarn classpath --glob`) and HADOOP_CONF_DIR")
    client_class = _client_class()
    try:
        with log.capturing_output():
            keytab = {} if login is None else {"principal": login.principal, "keytab": login.keytab}
            return client_class(log=None, log_level="debug" if log.verbose else "info", **keytab)
    except Exception as exc:  # the Java driver would not start: Hadoop's configuration, JAVA_HOME...
        raise CliError(f"cannot start skein's driver (is HADOOP_CONF_DIR set?): {str(exc).rstrip('.')}; "
                       f"its output is in {log.path}") from None


def find_app_id(client, name: str, app_id: Optional[str]) -> str:
    if app_id:
        return app_id
    apps = client.get_applications(name=f"tarn-{name}", states=["SUBMITTED", "ACCEPTED", "RUNNING"])
    if not apps:
        finished = client.get_applications(name=f"tarn-{name}", states=["FINISHED", "FAILED", "KILLED"])
        last = max(finished, key=lambda a: a.finish_time or a.start_time, default=None)
        raise CliError(f"no running application named tarn-{name}" +
                       (f"; the last one {how_it_ended(last)}" if last else "; give --app-id"))
    if len(apps) > 1:
        raise CliError(f"{len(apps)} running applications named tarn-{name}: "
                       f"{', '.join(a.id for a in apps)}; give --app-id")
    return apps[0].id


def how_it_ended(report) -> str:
    """One line: which application, how it ended, and YARN's diagnostics (the supervisor's reason)."""
    diagnostics = " ".join((report.diagnostics or "").split())
    return f"{report.id} ended {report.final_status}" + (f": {diagnostics}" if diagnostics else "")


def am_address(client, app_id: str, wait_s: float = 0.0) -> str:
    from ..yarn import KV_AM_ADDRESS
    deadline = time.monotonic() + wait_s
    while True:
        try:
            app = client.connect(app_id, wait=wait_s > 0)
            try:
                value = app.kv.get(KV_AM_ADDRESS)
            finally:
                app.close()
        except Exception as exc:
            ended = _ended(client, app_id)  # e.g. the supervisor gave up: say why, at once
            if ended or time.monotonic() >= deadline:
                raise CliError(ended or f"cannot reach {app_id}'s application master: {exc}") from None
            value = None
        if value:
            return as_text(value)
        if time.monotonic() >= deadline:
            raise CliError(f"{app_id}'s tarn-am has not published its address (yet)")
        time.sleep(0.5)


def _ended(client, app_id: str) -> str:
    """How the application ended, or empty while it runs (or YARN cannot say)."""
    try:
        report = client.application_report(app_id)
    except Exception:
        return ""
    return how_it_ended(report) if str(report.state) in ("FINISHED", "FAILED", "KILLED") else ""
