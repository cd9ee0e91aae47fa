"""The print PDF, parsed with poppler-utils: page count, MediaBox = trim + bleed, TrimBox/BleedBox per page,
images embedded once at native resolution (pixel-identical) with the expected effective DPI, text extractable."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from app.assets import write_image_asset
from app.export import export_book
from app.pdf_export import png_stream_info
from app.project_model import Balloon, BookSettings, Page, Panel, Project, SlotFill

pytestmark = pytest.mark.skipif(shutil.which("pdfinfo") is None, reason="needs poppler-utils (pdfinfo, pdfimages)")


def gradient(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, w)[None, :]
    a[..., 1] = np.linspace(0, 255, h)[:, None]
    a[..., 2] = rng.integers(0, 255, (h, w))
    return Image.fromarray(a)


def make_project(folder, book=None):
    a = write_image_asset(folder, gradient(600, 400, 1), {"test": 1})
    b = write_image_asset(folder, gradient(300, 450, 2), {"test": 2})
    panels = (Panel("p1", "one", current=a, alternates=(a,)), Panel("p2", "two", current=b, alternates=(b,)),
              Panel("p3", "three"))
    pages = (
        Page("a", "2x2", slots=(SlotFill("p1"), SlotFill("p2"), SlotFill("p3"), SlotFill("p1", 0.0, 0.5, 1.5)),
             balloons=(Balloon("b1", "speech", "Hello reader!", 0.1, 0.05, 0.3, 0.1, 0.2, 0.3),
                       Balloon("b2", "caption", "Meanwhile downtown", 0.5, 0.9, 0.45, 0.05),
                       Balloon("b3", "thought", "Too many words " * 60, 0.6, 0.5, 0.1, 0.05))),
        Page("b", "splash", slots=(SlotFill("p2"),),
             balloons=(Balloon("b4", "shout", "KABOOM", 0.3, 0.3, 0.4, 0.2, 0.5, 0.8),)),
        Page("c", "picture-book", slots=(SlotFill("p1"),)),
    )
    return Project("Book", book or BookSettings(title="Book"), panels=panels, pages=pages), a, b


def boxes(pdf) -> dict[int, dict[str, tuple[float, ...]]]:
    out = subprocess.run(["pdfinfo", "-f", "1", "-l", "99", "-box", str(pdf)], capture_output=True, text=True,
                         check=True).stdout
    pages: dict[int, dict[str, tuple[float, ...]]] = {}
    for m in re.finditer(r"Page\s+(\d+) (MediaBox|TrimBox|BleedBox):\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)",
                         out):
        pages.setdefault(int(m[1]), {})[m[2]] = tuple(float(v) for v in m.group(3, 4, 5, 6))
    return pages


def images(pdf) -> list[dict[str, str]]:
    out = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    head = lines[0].split()
    return [dict(zip(head, ln.split())) for ln in lines[2:]]


def test_print_pdf_boxes_images_and_text(tmp_path):
    folder = tmp_path / "proj"
    project, a, b = make_project(folder)
    out = tmp_path / "book.pdf"
    report = export_book(project, folder, out, "pdf")
    assert report.pages_written == 3 and report.files == (out,)
    bx = boxes(out)
    assert sorted(bx) == [1, 2, 3]
    # US comic 477 x 738 pt + 9 pt bleed top/bottom and on the outer edge only (page 1 is a right-hand page).
    assert bx[1] == {"MediaBox": (0, 0, 486, 756), "TrimBox": (0, 9, 477, 747), "BleedBox": (0, 0, 486, 756)}
    assert bx[2] == {"MediaBox": (0, 0, 486, 756), "TrimBox": (9, 9, 486, 747), "BleedBox": (0, 0, 486, 756)}
    assert bx[3]["TrimBox"] == (0, 9, 477, 747)

    imgs = images(out)
    assert [(i["page"], i["width"], i["height"]) for i in imgs] == [
        ("1", "600", "400"), ("1", "300", "450"), ("1", "600", "400"), ("2", "300", "450"), ("3", "600", "400")]
    assert len({i["object"] for i in imgs}) == 2  # each file embedded once, however often it is placed
    by_page_panel = {(w.page, w.panel_id): w.dpi for w in report.low_dpi}
    # Every placement here prints below 200 dpi; the PDF's own x-ppi agrees with the report.
    expected = [(1, "p1"), (1, "p2"), (1, "p1"), (2, "p2"), (3, "p1")]
    assert sorted(by_page_panel) == sorted(set(expected))
    ppi = [int(i["x-ppi"]) for i in imgs]
    assert ppi[3] == round(by_page_panel[(2, "p2")])
    assert ppi[4] == round(by_page_panel[(3, "p1")])
    assert all(i["x-ppi"] == i["y-ppi"] for i in imgs)  # never stretched

    subprocess.run(["pdfimages", "-png", "-f", "2", "-l", "2", str(out), str(tmp_path / "x")], check=True)
    got = np.asarray(Image.open(tmp_path / "x-000.png").convert("RGB"))
    assert np.array_equal(got, np.asarray(Image.open(folder / "assets" / f"{b}.png").convert("RGB")))

    text = " ".join(subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    assert "Hello reader!" in text and "Meanwhile downtown" in text and "KABOOM" in text
    assert "Panel 3: not generated yet" in text
    assert "Too many words" not in text  # overflowing text is hidden, and reported
    assert report.overflows == ((1, "b3"),)
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True, check=True).stdout
    assert "ComicNeue-Regular" in fonts and "ComicNeue-Bold" in fonts and "TrueType" in fonts


def test_screen_pdf_has_no_bleed_and_landscape_books_turn(tmp_path):
    folder = tmp_path / "proj"
    project, _, _ = make_project(folder, BookSettings(title="B", page_preset="a4", orientation="landscape"))
    out = tmp_path / "screen.pdf"
    export_book(project, folder, out, "screen-pdf")
    bx = boxes(out)
    for n in (1, 2, 3):
        assert bx[n]["MediaBox"] == (0, 0, 841.89, 595.28)
        assert "TrimBox" not in bx[n] or bx[n]["TrimBox"] == bx[n]["MediaBox"]


def test_png_data_is_copied_untouched_when_possible(tmp_path):
    gradient(20, 10).save(tmp_path / "rgb.png")
    w, h, colours, data = png_stream_info(tmp_path / "rgb.png")
    assert (w, h, colours) == (20, 10, 3) and len(data) > 0
    gradient(20, 10).convert("RGBA").save(tmp_path / "rgba.png")
    gradient(20, 10).convert("P").save(tmp_path / "pal.png")
    assert png_stream_info(tmp_path / "rgba.png") is None and png_stream_info(tmp_path / "pal.png") is None


def test_non_rgb_pngs_still_embed_losslessly(tmp_path):
    folder = tmp_path / "proj"
    im = gradient(64, 64).convert("RGBA")
    import io

    from app.assets import write_asset

    buf = io.BytesIO()
    im.save(buf, "PNG")
    aid = write_asset(folder, buf.getvalue(), {})
    project = Project("B", BookSettings(title="B"), panels=(Panel("p", "x", current=aid, alternates=(aid,)),),
                      pages=(Page("a", "splash", slots=(SlotFill("p"),)),))
    out = tmp_path / "b.pdf"
    export_book(project, folder, out, "pdf")
    imgs = images(out)
    assert (imgs[0]["width"], imgs[0]["height"]) == ("64", "64")
