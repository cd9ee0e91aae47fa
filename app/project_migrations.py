"""Older ``project.json`` schema versions and the chain that lifts them to the current one.

Contract: ``migrate(data)`` takes any JSON value, checks ``format`` and ``schema_version`` and returns a *new*
dict in the current schema (the input is never modified); it raises ``ProjectError`` for a foreign file, a
schema version newer than this app knows, or a malformed older file. Opening never rewrites the file: a migrated
project is written in the current version on its next save (the previous file is kept as ``project.json.bak``).

History (each step is one function, tested from every older version):

- **v1** (the development format, before the first release): one ``negative_prompt`` for the whole project at
  top level; a page listed its panels as ``"panels": [panel id or null, ...]`` (no framing); balloons had no tail
  (the renderer drew speech tails pointing down from the body's centre) and no font fields; no ``generation``
  block (steps 30, guidance 5.0, ddim were fixed in the app).
- **v2** (current): per-panel ``negative_prompt``; pages hold ``slots`` (panel id + focus/zoom); balloons carry
  ``tail_x``/``tail_y`` (tail tip, or null), ``font_size_pt`` and ``font``; a ``generation`` block.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from .project_model import FORMAT, SCHEMA_VERSION, ProjectError

__all__ = ["migrate", "MIGRATIONS", "migrate_v1_to_v2"]


def migrate_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2 (``data`` is a private copy; errors name the v1 path)."""
    negative = data.pop("negative_prompt", "")
    if not isinstance(negative, str):
        raise ProjectError(f"expected a text, got {negative!r}", path="negative_prompt")
    panels = data.get("panels", [])
    if isinstance(panels, list):
        for panel in panels:
            if isinstance(panel, dict) and "negative_prompt" not in panel:
                panel["negative_prompt"] = negative
    pages = data.get("pages", [])
    if isinstance(pages, list):
        for i, page in enumerate(pages):
            if not isinstance(page, dict):
                continue
            if "panels" in page:
                ids = page.pop("panels")
                if not isinstance(ids, list):
                    raise ProjectError(f"expected a list, got {ids!r}"[:120], path=f"pages[{i}].panels")
                page["slots"] = [{"panel_id": pid, "focus_x": 0.5, "focus_y": 0.5, "zoom": 1.0} for pid in ids]
            balloons = page.get("balloons", [])
            if isinstance(balloons, list):
                for b in balloons:
                    if not isinstance(b, dict):
                        continue
                    speaks = b.get("kind") in ("speech", "shout", "thought")
                    x, y, w, h = (b.get(k) for k in ("x", "y", "w", "h"))
                    if speaks and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y, w, h)):
                        # v1 drew the tail from the body's centre straight down, 1/20 of the page below the body.
                        b.setdefault("tail_x", min(1.0, max(0.0, x + w / 2)))
                        b.setdefault("tail_y", min(1.0, max(0.0, y + h + 0.05)))
                    else:
                        b.setdefault("tail_x", None)
                        b.setdefault("tail_y", None)
                    b.setdefault("font_size_pt", None)
                    b.setdefault("font", "comic")
    data.setdefault("generation", {"steps": 30, "guidance": 5.0, "scheduler": "ddim"})
    data["schema_version"] = 2
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: migrate_v1_to_v2}


def migrate(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProjectError("this is not a Consistory Studio project (expected a JSON object at the top)",
                           path="project.json")
    if data.get("format") != FORMAT:
        raise ProjectError(f"this is not a Consistory Studio project (format is {data.get('format')!r}, "
                           f"expected {FORMAT!r})", path="format")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ProjectError(f"expected a whole number ≥ 1, got {version!r}"[:120], path="schema_version")
    if version > SCHEMA_VERSION:
        raise ProjectError(f"this project was made by a newer version of Consistory Studio (schema "
                           f"{version}, this app reads up to {SCHEMA_VERSION}); update the app",
                           path="schema_version", hint="Nothing was changed on disk.")
    out = copy.deepcopy(data)
    while out["schema_version"] < SCHEMA_VERSION:
        out = MIGRATIONS[out["schema_version"]](out)
    return out
