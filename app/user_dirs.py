"""Where the app keeps its per-user files.

Contract: ``data_dir()``, ``cache_dir()``, ``config_dir()``, ``library_dir()`` (the character library, inside the
data dir) return absolute paths and create nothing. By default they are platformdirs' per-user locations for
"ConsistoryStudio"; when the environment variable ``CONSISTORY_STUDIO_HOME`` is set (tests, portable installs)
all of them live under it: ``$HOME_/data``, ``$HOME_/cache``, ``$HOME_/config``, ``$HOME_/data/library``. The
variable is read on every call, so a test can change it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["APP_NAME", "HOME_ENV", "data_dir", "cache_dir", "config_dir", "library_dir", "ensure_dir"]

APP_NAME = "ConsistoryStudio"
HOME_ENV = "CONSISTORY_STUDIO_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser().absolute() if value else None


def data_dir() -> Path:
    home = _home()
    if home is not None:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    home = _home()
    if home is not None:
        return home / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    home = _home()
    if home is not None:
        return home / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def library_dir() -> Path:
    return data_dir() / "library"


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
