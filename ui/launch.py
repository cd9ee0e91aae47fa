"""Entry point of ``consistory-studio``: with a sub-command it runs headless (``app.cli``), without one it opens
the app window. Qt is imported only when a window is needed."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and not argv[0].startswith("--gui"):
        from app.cli import main as cli_main

        return cli_main(argv)
    from ui.app_main import run

    return run(argv[1:] if argv else [])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
