"""CBZ comic archive: a zip of page PNGs (``page-001.png`` …, stored uncompressed: PNG is already compressed)
followed by ``ComicInfo.xml`` (ComicRack schema: title, page count, each page's index, size and type)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["write_cbz", "comic_info_xml"]


def comic_info_xml(title: str, sizes: Sequence[tuple[int, int]]) -> str:
    cover = ' Type="FrontCover"'
    pages = "\n".join(f'    <Page Image="{i}" ImageWidth="{w}" ImageHeight="{h}"{cover if i == 0 else ""} />'
                      for i, (w, h) in enumerate(sizes))
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<ComicInfo xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            f"  <Title>{escape(title)}</Title>\n"
            f"  <PageCount>{len(sizes)}</PageCount>\n"
            "  <Manga>No</Manga>\n"
            f"  <Pages>\n{pages}\n  </Pages>\n"
            "</ComicInfo>\n")


def write_cbz(images: Iterable[Any], out_path: Path | str, title: str = "") -> list[str]:
    """Write PIL images (any iterable: a generator is consumed one page at a time, and no page is kept once it is
    written) as a CBZ; returns the member names in order."""
    names: list[str] = []
    sizes: list[tuple[int, int]] = []
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_STORED) as z:
        for im in images:  # (not enumerate: its cached result tuple would hold the last page alive)
            buf = io.BytesIO()
            im.save(buf, "PNG")
            name = f"page-{len(names) + 1:03d}.png"
            z.writestr(name, buf.getvalue())
            names.append(name)
            sizes.append(im.size)
            del im, buf
        z.writestr("ComicInfo.xml", comic_info_xml(title, sizes), compress_type=zipfile.ZIP_DEFLATED)
    return names
