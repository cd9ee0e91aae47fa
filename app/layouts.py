"""Page layout templates: JSON data in ``resources/layouts/<id>.json``, loaded and validated here.

A template places image *slots* (and optional *text areas*, e.g. the picture book's text under the image) as
rectangles ``[x, y, w, h]`` in fractions of the page's live area (trim minus margins), origin top-left. A slot may
list edges in ``bleed`` ("top", "right", "bottom", "left"): such an edge must lie on the live-area boundary and
its picture then runs off the page (to the bleed edge; to the trim on a spine edge). Gutters are not part of the
data: ``app.page_geometry`` insets every edge shared with another box by half the page's gutter.

Contract: ``load_layout(id)`` / ``all_layouts()`` return validated ``LayoutTemplate``s; ``parse_layout(data,
source)`` validates a dict and raises ``LayoutError`` with one sentence naming the file, the slot and the fix.
``Page.slots[i]`` fills ``template.slots[i]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["LayoutError", "LayoutBox", "LayoutTemplate", "EDGES", "LAYOUTS_DIR", "load_layout", "all_layouts",
           "parse_layout", "layout_ids"]

LAYOUTS_DIR = Path(__file__).resolve().parent.parent / "resources" / "layouts"
FORMAT = "consistory-studio-layout"
EDGES = ("top", "right", "bottom", "left")
_EPS = 1e-4


class LayoutError(ValueError):
    user_message = True


@dataclass(frozen=True)
class LayoutBox:
    """A rectangle in live-area fractions and the edges along which it bleeds off the page."""

    x: float
    y: float
    w: float
    h: float
    bleed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LayoutTemplate:
    id: str
    name: str
    slots: tuple[LayoutBox, ...]
    text_areas: tuple[LayoutBox, ...] = ()


def _box(item: Any, where: str, source: str, allow_bleed: bool) -> LayoutBox:
    if not isinstance(item, dict) or "rect" not in item:
        raise LayoutError(f"{source}: {where} must be an object with a \"rect\": [x, y, w, h].")
    rect = item["rect"]
    if (not isinstance(rect, list) or len(rect) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rect)):
        raise LayoutError(f"{source}: {where} has rect {rect!r}; write four numbers [x, y, w, h] between 0 and 1.")
    x, y, w, h = (float(v) for v in rect)
    if w <= 0 or h <= 0:
        raise LayoutError(f"{source}: {where} has width {w:g} and height {h:g}; both must be greater than 0.")
    if x < -_EPS or y < -_EPS or x + w > 1 + _EPS or y + h > 1 + _EPS:
        raise LayoutError(f"{source}: {where} rect {rect!r} leaves the live area; keep x + w and y + h within 0..1.")
    bleed = item.get("bleed", [])
    if bleed and not allow_bleed:
        raise LayoutError(f"{source}: {where} is a text area and cannot bleed; remove its \"bleed\".")
    if not isinstance(bleed, list) or any(e not in EDGES for e in bleed):
        raise LayoutError(f"{source}: {where} has bleed {bleed!r}; list edges among {', '.join(EDGES)}.")
    on_edge = {"top": y <= _EPS, "left": x <= _EPS, "bottom": y + h >= 1 - _EPS, "right": x + w >= 1 - _EPS}
    for e in bleed:
        if not on_edge[e]:
            raise LayoutError(f"{source}: {where} bleeds on its {e} edge, which is not on the page edge; "
                              f"move the slot to the {e} of the live area or remove \"{e}\" from its bleed.")
    return LayoutBox(x, y, w, h, frozenset(bleed))


def _overlap(a: LayoutBox, b: LayoutBox) -> bool:
    return (min(a.x + a.w, b.x + b.w) - max(a.x, b.x) > _EPS and min(a.y + a.h, b.y + b.h) - max(a.y, b.y) > _EPS)


def parse_layout(data: Any, source: str = "layout") -> LayoutTemplate:
    """Validate a template dict (as read from JSON). ``source`` names it in errors (usually the file)."""
    if not isinstance(data, dict):
        raise LayoutError(f"{source}: a layout must be a JSON object.")
    if data.get("format") != FORMAT:
        raise LayoutError(f"{source}: \"format\" must be {FORMAT!r}, got {data.get('format')!r}.")
    if data.get("version") != 1:
        raise LayoutError(f"{source}: layout version {data.get('version')!r} is not supported; this app reads "
                          f"version 1 (update the app or fix the file).")
    lid, name = data.get("id"), data.get("name")
    if not isinstance(lid, str) or not lid:
        raise LayoutError(f"{source}: \"id\" must be a non-empty string.")
    if not isinstance(name, str) or not name:
        raise LayoutError(f"{source}: \"name\" must be a non-empty string.")
    slots_raw, text_raw = data.get("slots"), data.get("text_areas", [])
    if not isinstance(slots_raw, list) or not slots_raw:
        raise LayoutError(f"{source}: \"slots\" must list at least one slot.")
    if not isinstance(text_raw, list):
        raise LayoutError(f"{source}: \"text_areas\" must be a list.")
    slots = tuple(_box(s, f"slot {i + 1}", source, True) for i, s in enumerate(slots_raw))
    texts = tuple(_box(s, f"text area {i + 1}", source, False) for i, s in enumerate(text_raw))
    boxes = [(f"slot {i + 1}", b) for i, b in enumerate(slots)] + [(f"text area {i + 1}", b)
                                                                   for i, b in enumerate(texts)]
    for i, (na, a) in enumerate(boxes):
        for nb, b in boxes[i + 1:]:
            if _overlap(a, b):
                raise LayoutError(f"{source}: {na} and {nb} overlap; boxes must not cover each other.")
    return LayoutTemplate(lid, name, slots, texts)


@cache
def _load(path: Path) -> LayoutTemplate:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LayoutError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno}); fix the file.") from exc
    t = parse_layout(data, path.name)
    if t.id != path.stem:
        raise LayoutError(f"{path.name}: its id {t.id!r} differs from the file name; rename one to match.")
    return t


def layout_ids(directory: Path = LAYOUTS_DIR) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in directory.glob("*.json")))


def load_layout(layout_id: str, directory: Path = LAYOUTS_DIR) -> LayoutTemplate:
    path = directory / f"{layout_id}.json"
    if "/" in layout_id or "\\" in layout_id or not path.is_file():
        raise LayoutError(f"Unknown page layout {layout_id!r}; choose one of: {', '.join(layout_ids(directory))}.")
    return _load(path)


def all_layouts(directory: Path = LAYOUTS_DIR) -> tuple[LayoutTemplate, ...]:
    return tuple(load_layout(i, directory) for i in layout_ids(directory))
