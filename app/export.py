"""Export a book: print PDF, screen PDF, one PNG per page, or CBZ — with a report of what needs attention.

Contract: ``export_book(project, folder, out_path, fmt, dpi=300)`` → ``ExportReport``; ``prepare_export`` runs its
checks and composes the pages without writing (``render`` calls it before generating).
- "pdf": print PDF, each page trim + its bleed with TrimBox/BleedBox; "screen-pdf": trim only, no boxes;
  "png": one PNG per page at ``dpi`` (``out_path`` is a folder, or ``book.png`` → ``book-001.png`` …);
  "cbz": page PNGs at ``dpi`` + ComicInfo.xml. PNG and CBZ pages have no bleed.
- The report lists every placed image printing below ``LOW_DPI`` (pixels per placed inch), balloons whose text
  does not fit (hidden, not spilled), and slots drawn as placeholders (empty, not generated, missing file).
- Files are written to a temporary name and renamed, so a failed export never leaves a half-written book.
- Mistakes a user can make raise ``ExportError`` (one sentence: what is wrong and what to do).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .page_composition import PageComposition, compose_page

__all__ = ["ExportError", "ExportReport", "LowDpiImage", "FORMATS", "LOW_DPI", "compose_book", "export_book",
           "prepare_export"]

FORMATS = ("pdf", "screen-pdf", "png", "cbz")
LOW_DPI = 200.0


class ExportError(Exception):
    user_message = True


@dataclass(frozen=True)
class LowDpiImage:
    page: int  # 1-based
    panel_id: str
    dpi: float


@dataclass(frozen=True)
class ExportReport:
    fmt: str
    files: tuple[Path, ...]
    pages_written: int
    low_dpi: tuple[LowDpiImage, ...]
    overflows: tuple[tuple[int, str], ...]  # (page 1-based, balloon id)
    placeholders: tuple[tuple[int, str], ...]  # (page 1-based, label)

    def warnings(self) -> list[str]:
        out = [f"Page {w.page}: panel {w.panel_id} prints at {w.dpi:.0f} dpi (below {LOW_DPI:.0f}); "
               f"generate it larger or upscale it." for w in self.low_dpi]
        out += [f"Page {p}: the text of balloon {b} does not fit; enlarge the balloon or shorten the text."
                for p, b in self.overflows]
        out += [f"Page {p}: {label}." for p, label in self.placeholders]
        return out


def compose_book(project: Any, folder: Path | str, bleed: bool = True) -> list[PageComposition]:
    panels = {p.id: p for p in project.panels}
    numbers = {p.id: i + 1 for i, p in enumerate(project.panels)}
    return [compose_page(project.book, page, i, panels, folder, bleed=bleed, panel_numbers=numbers)
            for i, page in enumerate(project.pages)]


def _replace_into(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def _temp_beside(final: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(name)


def prepare_export(project: Any, folder: Path | str, out_path: Path | str, fmt: str = "pdf",
                   dpi: float = 300) -> tuple[Path, bool, list[PageComposition]]:
    """Check everything an export needs (format, dpi, pages, where to write, every page's layout) and compose the
    pages, before any file is written: ``(out, png_dir, pages)``. ``render`` calls it before generating, so a
    mistake in the export settings is found before hours of drawing. Raises ``ExportError``."""
    from .page_raster import MAX_DPI, MIN_DPI

    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    if fmt in ("png", "cbz") and not (isinstance(dpi, (int, float)) and MIN_DPI <= dpi <= MAX_DPI):
        raise ExportError(f"The resolution {dpi!r} dpi is out of range; choose between {MIN_DPI} and {MAX_DPI}.")
    if not project.pages:
        raise ExportError("The book has no pages yet; add a page and place panels on it, then export again.")
    out = Path(out_path)
    png_dir = fmt == "png" and out.suffix.lower() != ".png"
    target_dir = out if png_dir else out.parent
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot create the folder {target_dir} ({exc.strerror}); choose another place.") from exc
    if out.is_dir() and not png_dir:
        raise ExportError(f"{out} is a folder; give a file name such as {out / ('book.' + fmt.split('-')[-1])}.")
    return out, png_dir, compose_book(project, folder, bleed=(fmt == "pdf"))


def export_book(project: Any, folder: Path | str, out_path: Path | str, fmt: str = "pdf", dpi: float = 300,
                progress: Callable[[int, int], None] | None = None) -> ExportReport:
    from .page_raster import render_page
    from .pdf_export import write_pdf

    out, png_dir, pages = prepare_export(project, folder, out_path, fmt, dpi)
    n = len(pages)
    files: list[Path] = []
    try:
        if fmt in ("pdf", "screen-pdf"):
            tmp = _temp_beside(out)
            try:
                write_pdf(pages, tmp, title=project.title, print_boxes=(fmt == "pdf"))
                _replace_into(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
            files.append(out)
            if progress:
                progress(n, n)
        elif fmt == "png":
            for i, pc in enumerate(pages):
                im = render_page(pc, dpi)
                final = out / f"page-{i + 1:03d}.png" if png_dir else out.with_name(f"{out.stem}-{i + 1:03d}.png")
                tmp = _temp_beside(final)
                try:
                    im.save(tmp, "PNG", dpi=(dpi, dpi))
                    _replace_into(tmp, final)
                finally:
                    tmp.unlink(missing_ok=True)
                files.append(final)
                if progress:
                    progress(i + 1, n)
        else:  # cbz: each page is rendered, written into the archive and dropped (one page in memory at a time)
            from .cbz_export import write_cbz

            def rendered():
                for i, pc in enumerate(pages):
                    yield render_page(pc, dpi)
                    if progress:
                        progress(i + 1, n)

            tmp = _temp_beside(out)
            try:
                write_cbz(rendered(), tmp, title=project.title)
                _replace_into(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
            files.append(out)
    except OSError as exc:
        raise ExportError(f"Could not write {out} ({exc.strerror or exc}); check the disk space and permissions, "
                          f"then export again.") from exc
    low = tuple(LowDpiImage(pc.index + 1, im.panel_id, im.placement.dpi)
                for pc in pages for im in pc.images if im.placement.dpi < LOW_DPI)
    over = tuple((pc.index + 1, b.id) for pc in pages for b in pc.balloons if b.text.overflow)
    holders = tuple((pc.index + 1, ph.label) for pc in pages for ph in pc.placeholders)
    return ExportReport(fmt, tuple(files), n, low, over, holders)
