"""QPainter renderer of a composed page: the same geometry as the PDF and the PNG export, drawn on screen.

Contract: ``paint_page(painter, pc, scale, guides=False)`` draws ``pc`` (an ``app.page_composition.PageComposition``)
with 1 pt = ``scale`` device pixels, origin at the MediaBox's top-left: white page, panel images (only the visible
source box, into the slot, smooth-scaled), grey labelled placeholders, slot borders, balloons (the shared Bézier
outlines as ``QPainterPath``s) and their text lines at the computed baselines in the shipped TTF (registered with
``QFontDatabase`` on first use; no hinting, no kerning: the metrics reportlab measured). ``guides`` adds the trim
box, safe area and text areas as thin dashed lines for editing. ``render_page_image(pc, dpi)`` returns a QImage
the size of the PNG export. Needs a ``QGuiApplication`` (fonts); images are loaded once per path and cached.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QImage, QPainter, QPainterPath, QPen

from app.balloon_geometry import SubPath, TextLayout
from app.fonts import font_path
from app.page_composition import BORDER_PT, PageComposition
from app.page_geometry import Rect

__all__ = ["paint_page", "render_page_image", "qt_font", "subpath_to_qt", "clear_image_cache"]

_GREY = QColor(209, 209, 209)
_LABEL = QColor(77, 77, 77)
_CACHE_SIZE = 48
_images: dict[Path, QImage] = {}


def clear_image_cache() -> None:
    _images.clear()


def _image(path: Path) -> QImage:
    im = _images.pop(path, None)
    if im is None:
        im = QImage(str(path))
    _images[path] = im  # most recently used last; assets are immutable, so a cached image never goes stale
    while len(_images) > _CACHE_SIZE:
        _images.pop(next(iter(_images)))
    return im


@cache
def _family(name: str) -> str:
    fid = QFontDatabase.addApplicationFont(str(font_path(name)))
    families = QFontDatabase.applicationFontFamilies(fid) if fid >= 0 else []
    if not families:
        raise RuntimeError(f"Qt could not load the font file {font_path(name)}.")
    return families[0]


def qt_font(name: str, size_units: float, device_dpi: float) -> QFont:
    """The shipped font at ``size_units`` painter units (points when the painter maps 1 unit to 1 pt)."""
    f = QFont(_family(name))
    f.setBold(name.endswith("-bold"))
    f.setPointSizeF(size_units * 72.0 / device_dpi)
    f.setKerning(False)
    f.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
    f.setStyleStrategy(QFont.StyleStrategy.PreferAntialias)
    return f


def subpath_to_qt(sp: SubPath, path: QPainterPath | None = None) -> QPainterPath:
    path = path if path is not None else QPainterPath()
    path.moveTo(*sp.start)
    for seg in sp.segments:
        if seg[0] == "L":
            path.lineTo(*seg[1])
        else:
            path.cubicTo(QPointF(*seg[1]), QPointF(*seg[2]), QPointF(*seg[3]))
    path.closeSubpath()
    return path


def _qrect(r: Rect) -> QRectF:
    return QRectF(r.x, r.y, r.w, r.h)


def _text(p: QPainter, t: TextLayout, colour: QColor) -> None:
    if not t.lines:
        return
    p.setFont(qt_font(t.font, t.size, p.device().logicalDpiY()))
    p.setPen(colour)
    for line in t.lines:
        p.drawText(QPointF(line.x, line.baseline), line.text)


def paint_page(p: QPainter, pc: PageComposition, scale: float = 1.0, guides: bool = False) -> None:
    g = pc.geometry
    p.save()
    p.scale(scale, scale)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    p.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    p.fillRect(QRectF(0, 0, g.media_w, g.media_h), Qt.GlobalColor.white)
    for im in pc.images:
        pl = im.placement
        p.save()
        p.setClipRect(_qrect(pl.clip))
        l, t, r, b = pl.src
        p.drawImage(_qrect(pl.clip), _image(im.path), QRectF(l, t, r - l, b - t))
        p.restore()
    for ph in pc.placeholders:
        p.fillRect(_qrect(ph.clip), _GREY)
        _text(p, ph.text, _LABEL)
    pen = QPen(QColor(0, 0, 0), BORDER_PT)
    pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    for r in [i.placement.clip for i in pc.images if i.border] + [h.clip for h in pc.placeholders if h.border]:
        p.drawRect(_qrect(r))
    for b in pc.balloons:
        pen = QPen(QColor(0, 0, 0), b.stroke)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        p.setPen(pen)
        p.setBrush(QColor.fromRgbF(*b.fill))
        for sp in reversed(b.outline):
            p.drawPath(subpath_to_qt(sp))
        _text(p, b.text, QColor(0, 0, 0))
    if guides:
        dash = QPen(QColor(0, 120, 255), 0.5, Qt.PenStyle.DashLine)
        p.setPen(dash)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(_qrect(g.trim))
        p.setPen(QPen(QColor(0, 170, 0), 0.5, Qt.PenStyle.DotLine))
        p.drawRect(_qrect(g.safe))
        for r in pc.text_areas:
            p.drawRect(_qrect(r))
    p.restore()


def render_page_image(pc: PageComposition, dpi: float = 150, guides: bool = False) -> QImage:
    s = dpi / 72.0
    g = pc.geometry
    img = QImage(max(1, round(g.media_w * s)), max(1, round(g.media_h * s)), QImage.Format.Format_RGB32)
    img.fill(Qt.GlobalColor.white)
    painter = QPainter(img)
    try:
        paint_page(painter, pc, s, guides)
    finally:
        painter.end()
    return img
