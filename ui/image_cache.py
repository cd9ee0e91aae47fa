"""Thumbnails of project assets for the browser and galleries (GUI thread; small LRU of scaled QPixmaps)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPixmap

from app.assets import asset_path

__all__ = ["ImageCache", "placeholder_pixmap"]


def placeholder_pixmap(size: int, text: str = "") -> QPixmap:
    pix = QPixmap(size, size)
    pix.fill(QColor("#e8e8ec"))
    if text:
        p = QPainter(pix)
        p.setPen(QColor("#777"))
        p.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
        p.end()
    return pix


class ImageCache:
    def __init__(self, capacity: int = 256) -> None:
        self._items: OrderedDict[tuple[str, str, int], QPixmap] = OrderedDict()
        self._capacity = capacity

    def asset(self, folder: Path | None, asset_id: str | None, size: int) -> QPixmap | None:
        """The asset scaled to fit ``size``×``size``; ``None`` when there is no such file."""
        if folder is None or not asset_id:
            return None
        key = (str(folder), asset_id, size)
        pix = self._items.get(key)
        if pix is None:
            try:
                path = asset_path(folder, asset_id)
            except Exception:
                return None
            full = QPixmap(str(path))
            if full.isNull():
                return None
            pix = full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
            self._items[key] = pix
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return pix

    def png(self, key: str, data: bytes, size: int) -> QPixmap | None:
        """PNG bytes (e.g. an anchor inside a ``.character`` file) scaled to fit ``size``; cached under ``key``."""
        cache_key = ("png", key, size)
        pix = self._items.get(cache_key)  # type: ignore[arg-type]
        if pix is None:
            full = QPixmap()
            if not data or not full.loadFromData(bytes(data)):
                return None
            pix = full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
            self._items[cache_key] = pix  # type: ignore[index]
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return pix

    def full(self, folder: Path | None, asset_id: str | None) -> QPixmap | None:
        if folder is None or not asset_id:
            return None
        try:
            pix = QPixmap(str(asset_path(folder, asset_id)))
        except Exception:
            return None
        return None if pix.isNull() else pix
