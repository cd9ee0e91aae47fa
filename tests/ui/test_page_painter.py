"""The Qt page view draws the same page as the PNG export: same size, close pixels, balloons in the same place."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.assets import write_image_asset
from app.export import compose_book
from app.page_raster import render_page
from app.project_model import Balloon, BookSettings, Page, Panel, Project, SlotFill


def qimage_to_array(img) -> np.ndarray:
    from PySide6.QtGui import QImage

    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


@pytest.fixture
def pages(tmp_path):
    rng = np.random.default_rng(3)
    base = np.zeros((256, 384, 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, 384)[None, :]
    base[..., 1] = np.linspace(255, 0, 256)[:, None]
    base[..., 2] = rng.integers(90, 110, (256, 384))
    a = write_image_asset(tmp_path, Image.fromarray(base), {})
    balloons = (Balloon("s", "speech", "Where did everyone go?", 0.06, 0.05, 0.4, 0.12, 0.2, 0.35),
                Balloon("t", "thought", "Hmm...", 0.55, 0.4, 0.3, 0.12, 0.5, 0.65),
                Balloon("x", "shout", "HEY!", 0.5, 0.05, 0.4, 0.14, 0.7, 0.4),
                Balloon("c", "caption", "Later that night", 0.05, 0.88, 0.5, 0.06))
    project = Project("Q", BookSettings(title="Q"), panels=(Panel("p", "x", current=a, alternates=(a,)),),
                      pages=(Page("1", "2x2", slots=(SlotFill("p"), SlotFill("p", 0.1, 0.9, 1.4), SlotFill(None)),
                                  balloons=balloons),
                             Page("2", "splash", slots=(SlotFill("p"),), balloons=balloons)))
    return compose_book(project, tmp_path, bleed=True)


@pytest.mark.parametrize("index", [0, 1])
def test_qt_render_matches_png_export(qapp, pages, index):
    from ui.page_painter import render_page_image

    pc = pages[index]
    png = np.asarray(render_page(pc, 72)).astype(np.int16)
    qt = qimage_to_array(render_page_image(pc, 72)).astype(np.int16)
    assert qt.shape == png.shape == (756, 486 if index == 0 else 486, 3)
    diff = np.abs(qt - png)
    assert diff.mean() < 4.0
    assert (diff.max(axis=2) > 96).mean() < 0.03  # only anti-aliased edges and glyph rendering differ
    for b in pc.balloons:  # balloon bodies sit in the same place: their white/fill interiors agree
        x0, y0 = int(b.body.x + b.body.w * 0.3), int(b.body.y + b.body.h * 0.3)
        x1, y1 = int(b.body.x + b.body.w * 0.7), int(b.body.y + b.body.h * 0.7)
        lit_png = (png[y0:y1, x0:x1].min(axis=2) > 200).mean()
        lit_qt = (qt[y0:y1, x0:x1].min(axis=2) > 200).mean()
        assert lit_png > 0.6 and abs(lit_png - lit_qt) < 0.08, b.id
        by, bx = int(b.body.y + b.body.h / 2), int(b.body.x + 3)  # left end of the body: outline, then white
        assert abs(int(png[by, bx:bx + 12].min()) - int(qt[by, bx:bx + 12].min())) < 90


def test_guides_only_add_thin_lines(qapp, pages):
    from ui.page_painter import render_page_image

    plain = qimage_to_array(render_page_image(pages[0], 36)).astype(np.int16)
    guided = qimage_to_array(render_page_image(pages[0], 36, guides=True)).astype(np.int16)
    changed = (np.abs(plain - guided).max(axis=2) > 0).mean()
    assert 0 < changed < 0.05


def test_the_painter_uses_the_shipped_font(qapp):
    from PySide6.QtGui import QFontInfo, QFontMetricsF, QImage

    from app.fonts import string_width
    from ui.page_painter import qt_font

    img = QImage(10, 10, QImage.Format.Format_RGB32)
    f = qt_font("comic", 100.0, img.logicalDpiY())
    assert QFontInfo(f).family() == "Comic Neue"
    text = "Where did everyone go?"
    qt_w = QFontMetricsF(f, img).horizontalAdvance(text)
    assert qt_w == pytest.approx(string_width(text, "comic", 100.0), rel=0.01)
