"""PNG pages, CBZ, the export report, and the mistakes a user can make (each refused with one sentence)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from app.assets import write_image_asset
from app.export import ExportError, compose_book, export_book
from app.page_raster import render_page
from app.project_model import Balloon, BookSettings, Page, Panel, Project, SlotFill


def project_in(folder, px: int = 900):
    im = Image.fromarray(np.full((px, px, 3), (200, 30, 40), np.uint8))
    a = write_image_asset(folder, im, {})
    panels = (Panel("p1", "one", current=a, alternates=(a,)), Panel("p2", "two", current="0" * 64))
    pages = (Page("a", "2-tiers", slots=(SlotFill("p1"), SlotFill("p2")),
                  balloons=(Balloon("b", "speech", "Hi!", 0.3, 0.3, 0.3, 0.1),)),
             Page("b", "splash", slots=(SlotFill(None),)))
    return Project("My <Book>", BookSettings(title="My <Book>", page_preset="square-8"), panels=panels, pages=pages)


def test_png_pages_at_the_chosen_dpi_without_bleed(tmp_path):
    folder = tmp_path / "p"
    project = project_in(folder)
    report = export_book(project, folder, tmp_path / "pages", "png", dpi=50)
    assert [f.name for f in report.files] == ["page-001.png", "page-002.png"]
    with Image.open(report.files[0]) as im:
        assert im.size == (400, 400)  # 8 in square at 50 dpi, trim only
        assert im.getpixel((200, 40)) == (200, 30, 40)  # the red panel fills the top tier
        assert im.getpixel((132, 140)) == (255, 255, 255)  # inside the balloon body, left of its text
    assert report.placeholders == ((1, "Panel 2: image file missing"), (2, "Empty slot"))
    named = export_book(project, folder, tmp_path / "book.png", "png", dpi=40)
    assert [f.name for f in named.files] == ["book-001.png", "book-002.png"]


def test_png_export_is_the_raster_of_the_composed_page(tmp_path):
    folder = tmp_path / "p"
    project = project_in(folder)
    report = export_book(project, folder, tmp_path / "pages", "png", dpi=60)
    direct = render_page(compose_book(project, folder, bleed=False)[0], 60)
    assert np.array_equal(np.asarray(Image.open(report.files[0]).convert("RGB")), np.asarray(direct))


def test_cbz_holds_the_pages_and_comic_info(tmp_path):
    folder = tmp_path / "p"
    project = project_in(folder)
    out = tmp_path / "book.cbz"
    report = export_book(project, folder, out, "cbz", dpi=40)
    assert report.files == (out,) and report.pages_written == 2
    with zipfile.ZipFile(out) as z:
        assert z.namelist() == ["page-001.png", "page-002.png", "ComicInfo.xml"]
        info = z.read("ComicInfo.xml").decode()
        with z.open("page-002.png") as f:
            assert Image.open(f).size == (320, 320)
    assert "<Title>My &lt;Book&gt;</Title>" in info and "<PageCount>2</PageCount>" in info
    assert '<Page Image="1" ImageWidth="320" ImageHeight="320" />' in info


def test_cbz_pages_are_written_one_at_a_time(tmp_path):
    """``write_cbz`` consumes a generator page by page and keeps no written page (a long book at a high dpi
    would not fit in memory as a list)."""
    import weakref

    from app.cbz_export import write_cbz

    alive_when_next: list[bool] = []
    refs: list = []

    def pages():
        for k in range(3):
            if refs:
                alive_when_next.append(refs[-1]() is not None)
            im = Image.new("RGB", (20 + k, 10), (k * 80, 0, 0))
            refs.append(weakref.ref(im))
            yield im
            del im

    out = tmp_path / "b.cbz"
    assert write_cbz(pages(), out, title="T") == ["page-001.png", "page-002.png", "page-003.png"]
    assert alive_when_next == [False, False]
    with zipfile.ZipFile(out) as z:
        assert '<Page Image="2" ImageWidth="22" ImageHeight="10" />' in z.read("ComicInfo.xml").decode()
        with z.open("page-003.png") as f:
            assert Image.open(f).getpixel((0, 0)) == (160, 0, 0)


def test_low_dpi_is_reported_per_page_and_panel(tmp_path):
    folder = tmp_path / "p"
    small = export_book(project_in(folder, 300), folder, tmp_path / "a.pdf", "pdf")
    assert [(w.page, w.panel_id) for w in small.low_dpi] == [(1, "p1")]
    assert small.low_dpi[0].dpi == pytest.approx(300 / ((7.25 + 0.125) * 1.0), rel=0.02)
    assert any("panel p1 prints at 41 dpi (below 200)" in w for w in small.warnings())
    folder2 = tmp_path / "q"
    big = export_book(project_in(folder2, 2400), folder2, tmp_path / "b.pdf", "pdf")
    assert big.low_dpi == ()


def test_user_mistakes_are_refused_and_leave_nothing_behind(tmp_path):
    folder = tmp_path / "p"
    project = project_in(folder)
    with pytest.raises(ExportError, match="Unknown export format 'docx'; choose one of: pdf, screen-pdf, png, cbz"):
        export_book(project, folder, tmp_path / "x.docx", "docx")
    with pytest.raises(ExportError, match="resolution 5 dpi is out of range; choose between 36 and 1200"):
        export_book(project, folder, tmp_path / "x", "png", dpi=5)
    with pytest.raises(ExportError, match="The book has no pages yet"):
        export_book(Project("E", BookSettings(title="E")), folder, tmp_path / "e.pdf", "pdf")
    (tmp_path / "dir.pdf").mkdir()
    with pytest.raises(ExportError, match="is a folder; give a file name"):
        export_book(project, folder, tmp_path / "dir.pdf", "pdf")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="Cannot create the folder .*file/sub"):
        export_book(project, folder, blocker / "sub" / "b.pdf", "pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.pdf", "file", "p"]


def test_a_failing_write_keeps_the_previous_book(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    project = project_in(folder)
    out = tmp_path / "book.pdf"
    out.write_bytes(b"old book")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("app.pdf_export.write_pdf", boom)
    with pytest.raises(ExportError, match="Could not write .*book.pdf \\(No space left on device\\); check the disk"):
        export_book(project, folder, out, "pdf")
    assert out.read_bytes() == b"old book"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.pdf", "p"]


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_a_panel_image_cut_short_is_a_placeholder_not_a_broken_picture(tmp_path, fmt):
    folder = tmp_path / "p"
    project = project_in(folder)
    path = folder / "assets" / f"{project.panel('p1').current}.png"
    path.write_bytes(path.read_bytes()[:200])  # an interrupted copy: the header reads, the pixels do not
    report = export_book(project, folder, tmp_path / f"book.{fmt}", fmt, dpi=50)
    assert (1, "Panel 1: image file missing") in report.placeholders
