"""Entry point of ``consistory-studio``: with a sub-command it runs headless (``app.cli``); without one, or with a
project folder (``consistory-studio FOLDER`` or ``--gui FOLDER``), it opens the app window. Qt is imported only
when a window is needed."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from app.cli import SUBCOMMANDS

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0].startswith("--gui"):
        argv = argv[1:]
    elif argv and (argv[0] in SUBCOMMANDS or argv[0].startswith("-")):
        from app.cli import main as cli_main

        return cli_main(argv)
    elif argv and not Path(argv[0]).is_dir():
        print(f"error: {argv[0]!r} is neither a command ({', '.join(SUBCOMMANDS)}) nor a project folder.",
              file=sys.stderr)
        return 2
    from ui.app_main import run

    return run(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
