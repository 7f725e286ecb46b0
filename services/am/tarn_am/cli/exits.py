"""`tarn`'s exit codes, and every failure turned into one line: the one choke point between
the libraries' exceptions and the user's terminal (docs/cli.md lists the codes)."""
from __future__ import annotations

from typing import Tuple

from tarn_shared.errors import ConfigError, TarnError

EXIT_OK = 0
EXIT_FAILED = 1  # an operational error: YARN, the AM or HTTP failed, or the deployment is not there
EXIT_USAGE = 2  # bad flags or options (argparse uses 2 as well)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), except `tarn status --watch`, which ends with 0


def classify(exc: BaseException) -> Tuple[int, str, bool]:
    """(exit code, one-line message, whether the traceback belongs in the log) for ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted", False
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, str(exc), False
    if isinstance(exc, TarnError):
        return EXIT_FAILED, str(exc), False
    http = _http_failure(exc)
    if http:
        return EXIT_FAILED, http, False
    if type(exc).__module__.startswith("skein"):
        return EXIT_FAILED, kerberos_hint(_one_line(exc)) or f"YARN (skein): {_one_line(exc)}", False
    return EXIT_FAILED, f"unexpected {type(exc).__name__}: {_one_line(exc)}", True


# What Hadoop's RPC client says when it has neither a ticket nor a token for a secure server.
NO_CREDENTIALS = ("Kerberos ticket not found", "Client cannot authenticate via", "GSS initiate failed",
                  "Failed to find any Kerberos tgt")


def kerberos_hint(message: str) -> str:
    """A Kerberized YARN refusing a caller without a ticket, said with the fix; else ''."""
    if not any(marker in message for marker in NO_CREDENTIALS):
        return ""
    return ("YARN refused tarn: no valid Kerberos ticket; run kinit, or give --principal and --keytab "
            f"(YARN said: {message[:200]})")


def _http_failure(exc: BaseException) -> str:
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency of tarn-am
        return ""
    if isinstance(exc, httpx.RequestError):
        try:
            where = f" {exc.request.url}"
        except RuntimeError:  # no request attached
            where = ""
        return f"cannot reach tarn-am{where}: {_one_line(exc) or type(exc).__name__}"
    if isinstance(exc, httpx.HTTPError):
        return f"tarn-am answered with an error: {_one_line(exc)}"
    return ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
