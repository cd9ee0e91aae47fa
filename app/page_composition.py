"""Everything drawn on one page, resolved to points: the single input of every renderer (PDF, PNG, Qt).

Contract: ``compose_page(book, page, index, panels, folder, bleed=True)`` → ``PageComposition`` with the page
geometry, each filled slot's image placement (native pixels, clipped to the slot), a labelled placeholder for each
slot whose panel is empty, not generated yet, or whose image file is missing/unreadable (never an exception),
the text areas of the template, and every balloon's ``BalloonShape``. ``panels`` maps panel id → ``Panel``
(anything with ``id`` and ``current``); images are ``<folder>/assets/<asset id>.png``. Renderers draw, in order:
white page, images/placeholders (clipped), slot borders, balloons (fill + stroke, then text lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .balloon_geometry import BalloonShape, TextLayout, balloon_shape, layout_text
from .layouts import load_layout
from .page_geometry import ImagePlacement, PageGeometry, Rect, page_geometry, place_image, slot_rects, text_area_rects

__all__ = ["PlacedImage", "Placeholder", "PageComposition", "compose_page", "asset_file", "BORDER_PT"]

BORDER_PT = 1.0


def asset_file(folder: Path, asset_id: str) -> Path:
    return Path(folder) / "assets" / f"{asset_id}.png"


@dataclass(frozen=True)
class PlacedImage:
    slot: int
    panel_id: str
    path: Path
    placement: ImagePlacement
    border: bool


@dataclass(frozen=True)
class Placeholder:
    slot: int
    clip: Rect
    label: str
    border: bool
    panel_id: str | None
    text: TextLayout


@dataclass(frozen=True)
class PageComposition:
    index: int
    page_id: str
    geometry: PageGeometry
    images: tuple[PlacedImage, ...]
    placeholders: tuple[Placeholder, ...]
    text_areas: tuple[Rect, ...]
    balloons: tuple[BalloonShape, ...]


def _holder(slot: int, clip: Rect, label: str, border: bool, panel_id: str | None) -> Placeholder:
    box = clip.inset(6, 6, 6, 6)
    text = layout_text(label, "comic", box, 12.0)
    if text.overflow:
        text = layout_text(label, "comic", box, None)
    return Placeholder(slot, clip, label, border, panel_id, text)


def _image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:  # verify: a file cut short (an interrupted copy or sync) is a placeholder, not a broken picture in the book
        with Image.open(path) as im:
            size = im.size
            im.verify()
        return size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def compose_page(book: Any, page: Any, index: int, panels: Mapping[str, Any], folder: Path | str,
                 bleed: bool = True, panel_numbers: Mapping[str, int] | None = None) -> PageComposition:
    g = page_geometry(book, index, bleed=bleed)
    template = load_layout(page.layout)
    gutter = book.gutter_in if page.gutter_in is None else page.gutter_in
    rects = slot_rects(g, template, gutter)
    numbers = panel_numbers or {}
    images: list[PlacedImage] = []
    holders: list[Placeholder] = []
    for i, (rect, box) in enumerate(zip(rects, template.slots)):
        border = not box.bleed
        fill = page.slots[i] if i < len(page.slots) else None
        pid = fill.panel_id if fill is not None else None
        if pid is None:
            holders.append(_holder(i, rect, "Empty slot", border, None))
            continue
        name = f"Panel {numbers[pid]}" if pid in numbers else f"Panel {pid}"
        panel = panels.get(pid)
        if panel is None:
            holders.append(_holder(i, rect, f"{name}: not in the project", border, pid))
            continue
        if panel.current is None:
            holders.append(_holder(i, rect, f"{name}: not generated yet", border, pid))
            continue
        path = asset_file(Path(folder), panel.current)
        size = _image_size(path) if path.is_file() else None
        if size is None:
            holders.append(_holder(i, rect, f"{name}: image file missing", border, pid))
            continue
        placement = place_image(size[0], size[1], rect, fill.focus_x, fill.focus_y, fill.zoom)
        images.append(PlacedImage(i, pid, path, placement, border))
    texts = text_area_rects(g, template, gutter)
    shapes = tuple(balloon_shape(b, g.trim) for b in page.balloons)
    return PageComposition(index, page.id, g, tuple(images), tuple(holders), texts, shapes)
