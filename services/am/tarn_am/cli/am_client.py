"""How the `tarn` commands reach a deployment: skein's client, the application's id, its
tarn-am's address, and HTTP to it with refusals turned into one-line errors."""
from __future__ import annotations

import time
from typing import Optional

from tarn_shared.errors import TarnError
from tarn_shared.streams import as_text


class CliError(TarnError):
    """A failure to report in one line and exit 1."""


def skein_client():
    import skein  # loaded only by the commands that reach YARN
    try:
        return skein.Client(log_level="warn")
    except Exception as exc:  # the Java driver would not start: missing Hadoop, JAVA_HOME...
        raise CliError(f"cannot start skein's driver (is HADOOP_CONF_DIR set and `yarn` on PATH?): {exc}") from None


def find_app_id(client, name: str, app_id: Optional[str]) -> str:
    if app_id:
        return app_id
    apps = client.get_applications(name=f"tarn-{name}", states=["SUBMITTED", "ACCEPTED", "RUNNING"])
    if not apps:
        raise CliError(f"no running application named tarn-{name}; give --app-id")
    if len(apps) > 1:
        raise CliError(f"{len(apps)} running applications named tarn-{name}: "
                       f"{', '.join(a.id for a in apps)}; give --app-id")
    return apps[0].id


def am_address(client, app_id: str, wait_s: float = 0.0) -> str:
    from ..yarn import KV_AM_ADDRESS
    deadline = time.monotonic() + wait_s
    while True:
        try:
            app = client.connect(app_id, wait=wait_s > 0)
            value = app.kv.get(KV_AM_ADDRESS)
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise CliError(f"cannot reach {app_id}'s application master: {exc}") from None
            value = None
        if value:
            return as_text(value)
        if time.monotonic() >= deadline:
            raise CliError(f"{app_id}'s tarn-am has not published its address (yet)")
        time.sleep(0.5)


def am_http(token: Optional[str]):
    import httpx
    headers = {"X-TARN-Token": token} if token else {}
    return httpx.Client(timeout=15.0, headers=headers, trust_env=False)


def checked(response) -> object:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise CliError(f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}")
    return response

