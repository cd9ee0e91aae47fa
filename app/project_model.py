"""What a project is: frozen dataclasses for the book, its characters, panels and pages, and ``ProjectError``.

Contract:
- Every object is an immutable (frozen) dataclass; edits build new objects (``dataclasses.replace``) through the
  command objects of ``app.commands``. Tuples, never lists, so a ``Project`` is hashable and safe to hand to the
  worker thread.
- Geometry on a page is in fractions of the page's trim box, origin top-left (``Balloon``, ``SlotFill`` focus).
- Images are referenced by asset id (the sha256 hex of the PNG bytes, see ``app.assets``); a panel's ``current``
  is always one of its ``alternates``.
- Validation of values read from a file lives in ``app.project_codec`` (it names the JSON path of a bad field);
  ``validate_project`` there also checks a project built in code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "ProjectError",
    "FORMAT",
    "SCHEMA_VERSION",
    "BALLOON_KINDS",
    "MAX_CHARACTER_NAME",
    "BOOK_INCHES",
    "SCHEDULERS",
    "BookSettings",
    "GenerationSettings",
    "Character",
    "Panel",
    "SlotFill",
    "Balloon",
    "Page",
    "Project",
    "default_anchor_prompts",
    "default_anchor_seeds",
]

FORMAT = "consistory-studio-project"
SCHEMA_VERSION = 2  # the version this app writes; older ones are migrated by app.project_migrations
BALLOON_KINDS = ("speech", "thought", "shout", "caption")
MAX_CHARACTER_NAME = 200  # characters; the same in a project and in the character library
BOOK_INCHES = {"bleed_in": 1.0, "margin_in": 3.0, "gutter_in": 2.0}  # the largest a book's file and pages accept
SCHEDULERS = ("ddim", "euler")


class ProjectError(Exception):
    """A project (file, folder or edit) is wrong. App-level, not an engine error.

    ``message`` is one sentence for the user; ``path`` is the JSON path of the bad field ("panels[3].seed") or a
    file path, when known; ``hint`` says what to do. ``str(err)`` is "path: message hint".
    """

    user_message = True  # lets app.cli print it as a one-line error

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if not self.hint:
            return text
        return f"{text} {self.hint}" if text.endswith((".", "!", "?")) else f"{text}. {self.hint}"


def default_anchor_prompts(description: str) -> tuple[str, ...]:
    """Two anchor prompts derived from a character's description: as written, and "<description> standing"."""
    d = description.strip()
    return (d, f"{d} standing") if d else ()


def default_anchor_seeds(character_id: str, n: int) -> tuple[int, ...]:
    """Stable per-anchor seeds from the character id (same id → same anchors on every machine)."""
    return tuple(int.from_bytes(hashlib.sha256(f"{character_id}:{i}".encode()).digest()[:4], "big")
                 for i in range(n))


@dataclass(frozen=True)
class BookSettings:
    """Print settings of the book. ``page_preset`` ids and their geometry live in ``app.page_presets``."""

    title: str
    page_preset: str = "us-comic"
    orientation: Literal["portrait", "landscape"] = "portrait"
    bleed_in: float = 0.125
    margin_in: float = 0.375
    gutter_in: float = 0.125
    facing_pages: bool = True
    interior: bool = True


@dataclass(frozen=True)
class GenerationSettings:
    """Engine settings shared by every panel of the project (added field; not in the minimal contract)."""

    steps: int = 30
    guidance: float = 5.0
    scheduler: str = "ddim"


@dataclass(frozen=True)
class Character:
    """A character in the project. ``identity_file`` is a relative path inside the project folder (an opaque
    identity file copied from the library, e.g. ``characters/<id>.character``) or ``None``.

    Empty ``anchor_prompts`` are derived from ``description``; empty ``anchor_seeds`` from the id.
    """

    id: str
    name: str
    description: str
    subjects: tuple[str, ...]
    anchor_prompts: tuple[str, ...] = ()
    anchor_seeds: tuple[int, ...] = ()
    identity_file: str | None = None
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if not self.anchor_prompts:
            object.__setattr__(self, "anchor_prompts", default_anchor_prompts(self.description))
        if not self.anchor_seeds:
            object.__setattr__(self, "anchor_seeds", default_anchor_seeds(self.id, len(self.anchor_prompts)))


@dataclass(frozen=True)
class Panel:
    """One picture. ``text`` is its prompt; ``alternates`` are asset ids of every image generated for it (oldest
    first) and ``current`` the one in use. ``dropout`` None means "the characters' default"."""

    id: str
    text: str
    character_ids: tuple[str, ...] = ()
    style: str = ""
    negative_prompt: str = ""
    seed: int = 0
    seed_locked: bool = False
    width: int = 512
    height: int = 512
    alternates: tuple[str, ...] = ()
    current: str | None = None
    dropout: float | None = None


@dataclass(frozen=True)
class SlotFill:
    """What fills one slot of a page layout: a panel (or nothing) and how its image is framed."""

    panel_id: str | None = None
    focus_x: float = 0.5
    focus_y: float = 0.5
    zoom: float = 1.0


@dataclass(frozen=True)
class Balloon:
    """A speech/thought/shout balloon or a caption box. Body box and tail tip in page trim fractions (top-left
    origin); ``tail_x``/``tail_y`` None = no tail (captions never have one); ``font_size_pt`` None = auto-fit."""

    id: str
    kind: Literal["speech", "thought", "shout", "caption"]
    text: str
    x: float
    y: float
    w: float
    h: float
    tail_x: float | None = None
    tail_y: float | None = None
    font_size_pt: float | None = None
    font: str = "comic"


@dataclass(frozen=True)
class Page:
    """A page: a layout template id (``resources/layouts/<id>.json``), its slot fills in slot order, balloons."""

    id: str
    layout: str
    gutter_in: float | None = None
    slots: tuple[SlotFill, ...] = ()
    balloons: tuple[Balloon, ...] = ()

    def balloon(self, balloon_id: str) -> Balloon:
        for b in self.balloons:
            if b.id == balloon_id:
                return b
        raise ProjectError(f"There is no balloon {balloon_id!r} on page {self.id!r}.")


@dataclass(frozen=True)
class Project:
    """A whole project. ``schema_version`` is always the current one (older files are migrated when read)."""

    title: str
    book: BookSettings
    characters: tuple[Character, ...] = ()
    panels: tuple[Panel, ...] = ()
    pages: tuple[Page, ...] = ()
    model_source: str | None = None
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    format: str = FORMAT
    schema_version: int = SCHEMA_VERSION

    # Lookups (raise ProjectError naming the missing id) -------------------------------------------------------
    def character(self, character_id: str) -> Character:
        for c in self.characters:
            if c.id == character_id:
                return c
        raise ProjectError(f"There is no character {character_id!r} in this project.")

    def panel(self, panel_id: str) -> Panel:
        for p in self.panels:
            if p.id == panel_id:
                return p
        raise ProjectError(f"There is no panel {panel_id!r} in this project.")

    def page(self, page_id: str) -> Page:
        for p in self.pages:
            if p.id == page_id:
                return p
        raise ProjectError(f"There is no page {page_id!r} in this project.")

    # Copies with one object swapped (same position) -----------------------------------------------------------
    def with_character(self, character: Character) -> "Project":
        self.character(character.id)
        return replace(self, characters=tuple(character if c.id == character.id else c for c in self.characters))

    def with_panel(self, panel: Panel) -> "Project":
        self.panel(panel.id)
        return replace(self, panels=tuple(panel if p.id == panel.id else p for p in self.panels))

    def with_page(self, page: Page) -> "Project":
        self.page(page.id)
        return replace(self, pages=tuple(page if p.id == page.id else p for p in self.pages))

    def asset_ids(self) -> tuple[str, ...]:
        """Every asset referenced by a panel, in panel order, without duplicates."""
        seen: dict[str, None] = {}
        for p in self.panels:
            for a in p.alternates:
                seen.setdefault(a, None)
        return tuple(seen)
