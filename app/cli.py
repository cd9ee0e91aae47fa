"""The headless sub-commands of ``consistory-studio`` (``ui.launch`` opens the app when none is given).

Each sub-command lives in its own module (``app/cli_<name>.py``) exposing ``add_parser(subparsers)`` and
``run(args) -> int``; errors a user can cause print one sentence on stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "SUBCOMMANDS"]

SUBCOMMANDS = ("generate", "render", "character")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consistory-studio",
        description="Comics and storybooks with consistent characters. Without a command, opens the app.")
    sub = parser.add_subparsers(dest="command")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"app.cli_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"app.cli_{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing errors carry one sentence
        from engine.errors import EngineError

        if isinstance(exc, EngineError) or type(exc).__name__.endswith("Error") and hasattr(exc, "user_message"):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
