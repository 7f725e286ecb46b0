"""`tarn`: parse the command line, run the sub-command, turn TARN's errors into exit codes."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from tarn_shared.errors import ConfigError, TarnError

from .arguments import build_parser
from .subcommands import COMMANDS


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in COMMANDS and hasattr(args, "func"):
        return args.func(args)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"tarn {args.command}: {exc}", file=sys.stderr)
        return 2
    except TarnError as exc:
        print(f"tarn {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
