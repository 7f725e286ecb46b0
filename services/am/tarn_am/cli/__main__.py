"""`tarn`: parse the command line, run the sub-command, turn every failure into one line on
stderr and an exit code (exits.py); skein's and Hadoop's output go to the command's log."""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from .am_client import Yarn
from .arguments import build_parser
from .command_log import CommandLog
from .exits import EXIT_FAILED, classify
from .kerberos_login import keytab_login
from .subcommands import COMMANDS


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits 2 here
    log = CommandLog.for_command(args.command, verbose=getattr(args, "verbose", False))
    args.yarn = Yarn(log)
    run = COMMANDS.get(args.command) or args.func
    try:
        args.yarn.login = keytab_login(getattr(args, "principal", None), getattr(args, "keytab", None))
        return run(args)
    except BrokenPipeError:  # `tarn logs | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except (Exception, KeyboardInterrupt) as exc:
        code, message, unexpected = classify(exc)
        if unexpected:
            message += f" (traceback in {log.record_exception(exc)})"
        print(f"tarn {args.command}: {message}", file=sys.stderr)
        return code
    finally:
        try:
            args.yarn.close()
        except Exception as exc:  # the driver died already: nothing left to stop
            log.record_exception(exc)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
