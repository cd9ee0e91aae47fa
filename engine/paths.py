"""Where the engine finds its shipped data."""

from pathlib import Path

__all__ = ["ROOT", "RESOURCES"]

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "resources"
