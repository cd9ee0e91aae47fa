"""The fonts that ship with the app (``resources/fonts``) and their registration with reportlab.

Contract: a balloon's ``font`` is a logical name ("comic", "comic-bold"); ``font_path(name)`` gives the TTF file
and ``pdf_font_name(name)`` the reportlab name, registered on first use. The same TTF is used by reportlab
(``pdfmetrics.stringWidth`` measures every line), Pillow and Qt, so screen and print lay text out identically.
Shout balloons use the bold face of their font (a lettering convention).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["FONTS", "FontError", "font_path", "pdf_font_name", "font_metrics", "string_width", "font_for_kind"]

FONTS_DIR = Path(__file__).resolve().parent.parent / "resources" / "fonts"

FONTS: dict[str, str] = {
    "comic": "ComicNeue-Regular.ttf",
    "comic-bold": "ComicNeue-Bold.ttf",
}


class FontError(ValueError):
    user_message = True


def font_path(name: str) -> Path:
    if name not in FONTS:
        raise FontError(f"Unknown font {name!r}; choose one of: {', '.join(FONTS)}.")
    path = FONTS_DIR / FONTS[name]
    if not path.is_file():
        raise FontError(f"The font file {path} is missing; reinstall the app.")
    return path


def font_for_kind(name: str, kind: str) -> str:
    """The face a balloon of ``kind`` uses: shouts take the bold face when the font has one."""
    if kind == "shout" and f"{name}-bold" in FONTS:
        return f"{name}-bold"
    return name


@cache
def pdf_font_name(name: str) -> str:
    """Register the font with reportlab (once) and return its reportlab name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    rl_name = Path(FONTS[name] if name in FONTS else name).stem
    pdfmetrics.registerFont(TTFont(rl_name, str(font_path(name))))
    return rl_name


@cache
def font_metrics(name: str) -> tuple[float, float]:
    """(ascent, descent) as fractions of the font size; descent is negative."""
    from reportlab.pdfbase import pdfmetrics

    face = pdfmetrics.getFont(pdf_font_name(name)).face
    return face.ascent / 1000.0, face.descent / 1000.0


def string_width(text: str, name: str, size: float) -> float:
    """Width of ``text`` in points at ``size`` points (no kerning), the one measure used for every renderer."""
    from reportlab.pdfbase import pdfmetrics

    return pdfmetrics.stringWidth(text, pdf_font_name(name), size)
