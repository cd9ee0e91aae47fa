"""Write composed pages to a PDF with reportlab: print (trim + bleed, TrimBox/BleedBox) or screen (trim only).

Contract: ``write_pdf(pages, out_path, title=..., print_boxes=True)`` draws each ``PageComposition`` on a page of
exactly its MediaBox (trim + that page's bleed; ``compose_page(..., bleed=False)`` gives screen pages). With
``print_boxes`` each page gets its own TrimBox and BleedBox (4-tuples in points, y up). Panel images keep their
native pixels: an 8-bit RGB/grey non-interlaced PNG is embedded by copying its compressed IDAT stream (Flate with
PNG predictors) untouched — no decode, no recompression, no resampling; any other PNG goes through
``drawImage`` (lossless Flate). Each image file is embedded once however often it is placed. Balloons are vector
paths; their text is real text in the embedded TTF subset (selectable, searchable).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .balloon_geometry import SubPath, TextLayout
from .fonts import pdf_font_name
from .page_composition import BORDER_PT, PageComposition
from .page_geometry import Rect

if TYPE_CHECKING:  # pragma: no cover
    from reportlab.pdfgen.canvas import Canvas

__all__ = ["write_pdf", "png_stream_info", "PLACEHOLDER_GREY"]

PLACEHOLDER_GREY = (0.82, 0.82, 0.82)
LABEL_GREY = (0.3, 0.3, 0.3)


def png_stream_info(path: Path) -> tuple[int, int, int, bytes] | None:
    """(width, height, colours, IDAT bytes) of a PNG whose data PDF's Flate + PNG predictor can read as is."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind in (b"tRNS", b"PLTE"):
            return None
        elif kind == b"IEND":
            break
        pos += 12 + length
    if ihdr is None or not idat:
        return None
    w, h, depth, ctype, _comp, _filt, interlace = ihdr
    if depth != 8 or interlace != 0 or ctype not in (0, 2):
        return None
    return w, h, (1 if ctype == 0 else 3), b"".join(idat)


def _png_xobject(name: str, info: tuple[int, int, int, bytes]) -> Any:
    from reportlab.pdfbase.pdfdoc import PDFDictionary, PDFImageXObject, PDFName, PDFStream

    w, h, colours, idat = info

    class _PngPassThrough(PDFImageXObject):
        def format(self, document):  # noqa: A003 - reportlab's name
            s = PDFStream(content=idat)
            d = s.dictionary
            d["Type"] = PDFName("XObject")
            d["Subtype"] = PDFName("Image")
            d["Width"], d["Height"], d["BitsPerComponent"] = w, h, 8
            d["ColorSpace"] = PDFName("DeviceRGB" if colours == 3 else "DeviceGray")
            d["Filter"] = PDFName("FlateDecode")
            d["DecodeParms"] = PDFDictionary({"Predictor": 15, "Colors": colours, "BitsPerComponent": 8,
                                              "Columns": w})
            return s.format(document)

    obj = _PngPassThrough(name)
    obj.width, obj.height = w, h
    return obj


def _draw_image(c: "Canvas", path: Path, x: float, y: float, w: float, h: float) -> None:
    """Draw ``path`` into the box (x, y up) — embedded once per file, native pixels."""
    info = png_stream_info(path)
    if info is None:
        c.drawImage(str(path), x, y, w, h)
        return
    name = "png" + hashlib.md5(str(Path(path).resolve()).encode()).hexdigest()
    reg = c._doc.getXObjectName(name)
    if not c._doc.idToObject.get(reg):
        obj = _png_xobject(name, info)
        c._doc.Reference(obj, reg)
        c._doc.addForm(name, obj)
    c._currentPageHasImages = 1
    c.saveState()
    c.translate(x, y)
    c.scale(w, h)
    c._code.append(f"/{reg} Do")
    c.restoreState()
    c._formsinuse.append(name)


def _rect_path(c: "Canvas", r: Rect, H: float) -> Any:
    p = c.beginPath()
    p.rect(r.x, H - r.bottom, r.w, r.h)
    return p


def _sub_path(c: "Canvas", sp: SubPath, H: float) -> Any:
    p = c.beginPath()
    p.moveTo(sp.start[0], H - sp.start[1])
    for seg in sp.segments:
        if seg[0] == "L":
            p.lineTo(seg[1][0], H - seg[1][1])
        else:
            (x1, y1), (x2, y2), (x3, y3) = seg[1], seg[2], seg[3]
            p.curveTo(x1, H - y1, x2, H - y2, x3, H - y3)
    p.close()
    return p


def _text(c: "Canvas", t: TextLayout, H: float, colour: tuple[float, float, float] = (0, 0, 0)) -> None:
    if not t.lines:
        return
    c.setFillColorRGB(*colour)
    c.setFont(pdf_font_name(t.font), t.size)
    for line in t.lines:
        c.drawString(line.x, H - line.baseline, line.text)


def _draw_page(c: "Canvas", pc: PageComposition, print_boxes: bool) -> None:
    g = pc.geometry
    H = g.media_h
    c.setPageSize((g.media_w, H))
    if print_boxes:
        c.setTrimBox(g.pdf_box(g.trim))
        c.setBleedBox(g.pdf_box(g.media))
    for im in pc.images:
        c.saveState()
        c.clipPath(_rect_path(c, im.placement.clip, H), stroke=0, fill=0)
        d = im.placement.draw
        _draw_image(c, im.path, d.x, H - d.bottom, d.w, d.h)
        c.restoreState()
    for ph in pc.placeholders:
        c.setFillColorRGB(*PLACEHOLDER_GREY)
        c.drawPath(_rect_path(c, ph.clip, H), stroke=0, fill=1)
        _text(c, ph.text, H, LABEL_GREY)
    c.setStrokeColorRGB(0, 0, 0)
    c.setLineWidth(BORDER_PT)
    for r in [i.placement.clip for i in pc.images if i.border] + [p.clip for p in pc.placeholders if p.border]:
        c.drawPath(_rect_path(c, r, H), stroke=1, fill=0)
    for b in pc.balloons:
        c.setLineWidth(b.stroke)
        c.setLineJoin(1)
        c.setStrokeColorRGB(0, 0, 0)
        for sp in reversed(b.outline):
            c.setFillColorRGB(*b.fill)
            c.drawPath(_sub_path(c, sp, H), stroke=1, fill=1)
        _text(c, b.text, H)
    c.showPage()


def write_pdf(pages: Sequence[PageComposition], out_path: Path | str, *, title: str = "",
              print_boxes: bool = True) -> None:
    from reportlab.pdfgen.canvas import Canvas

    if not pages:
        raise ValueError("There are no pages to export; add a page to the book first.")
    g0 = pages[0].geometry
    c = Canvas(str(out_path), pagesize=(g0.media_w, g0.media_h), pageCompression=1, invariant=1)
    c.setTitle(title)
    c.setCreator("Consistory Studio")
    for pc in pages:
        _draw_page(c, pc, print_boxes)
    c.save()
