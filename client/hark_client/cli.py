"""``hark``: the Hark API from the shell.

Exit codes: 0 success, 1 API error or failed task, 2 usage error, 3 connection error,
4 wait timeout, 130 interrupted. ``--json`` prints what the server returned, for
scripts; ``-q`` prints only ids.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import _cli_output as out
from ._cli_commands import COMMANDS, UsageError
from ._cli_parser import build_parser
from ._cli_progress import ProgressBar
from ._sync.client import Client
from .errors import APIConnectionError, HarkError, TaskFailedError, WaitTimeoutError

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_CONNECTION, EXIT_TIMEOUT = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


def _api_key(args: argparse.Namespace) -> str | None:
    if not args.api_key_file:
        return args.api_key
    try:
        lines = Path(args.api_key_file).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read --api-key-file: {exc.strerror or exc}") from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise UsageError(f"--api-key-file {args.api_key_file} is empty")
    return key


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.progress = ProgressBar()
    args.waiting_for = None  # set once a task is submitted or waited for (for Ctrl-C)
    try:
        with Client(base_url=args.url, api_key=_api_key(args)) as client:
            COMMANDS[args.command](client, args)
        return EXIT_OK
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except ValueError as exc:  # refused by the client before sending
        print(f"hark: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WaitTimeoutError as exc:
        _fail(args, exc)
        return EXIT_TIMEOUT
    except APIConnectionError as exc:
        _fail(args, exc)
        return EXIT_CONNECTION
    except TaskFailedError as exc:
        if args.json:
            out.print_json(exc.task)
        _fail(args, exc)
        return EXIT_API
    except HarkError as exc:
        _fail(args, exc)
        return EXIT_API
    except KeyboardInterrupt:
        args.progress.done()
        if args.waiting_for:
            print(f"interrupted: task {args.waiting_for} keeps running; follow it with: "
                  f"hark tasks wait {args.waiting_for}", file=sys.stderr)
        else:
            print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK  # not reached: parser.error exits


def _fail(args: argparse.Namespace, exc: HarkError) -> None:
    args.progress.done()
    print(f"hark: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
