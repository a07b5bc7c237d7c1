"""`pamoja`: the operator's command line.

Every command exits 0 on success and non-zero with a one-line reason on stderr otherwise; with
`--json` a command prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from cli.context import CommandError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def build_parser() -> argparse.ArgumentParser:
    from cli import directory, server

    parser = argparse.ArgumentParser(prog="pamoja", description="Pamoja operator command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    server.register(sub)
    directory.register(sub)
    for module_name in ("cli.staff", "cli.oauth", "cli.safety", "cli.webhooks", "cli.housekeeping", "cli.subject"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
        return int(result or 0)
    except CommandError as exc:
        sys.stderr.write(f"pamoja: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a driver error can quote row values: report the type, not the message
        sys.stderr.write(f"pamoja: {args.command} failed ({type(exc).__name__}); is the database migrated "
                         "(pamoja migrate) and reachable?\n")
        return 1


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
