"""``project.json`` ⇄ ``Project``: the one place values read from a file are checked.

Contract:
- ``project_from_dict(data)`` accepts any JSON value (as ``json.loads`` returns it), migrates older schema
  versions (``app.project_migrations``) and returns a ``Project`` or raises ``ProjectError`` whose ``path`` is the
  JSON path of the first bad field (``panels[3].seed``) and whose message says what was expected and what was
  found: ``panels[3].seed: expected a whole number ≥ 0, got "abc"``. It never raises anything else.
- Unknown fields are refused (saving would silently drop them).
- ``project_to_dict(project)`` always writes the current schema version; ``validate_project`` checks a project
  built in code by the same rules (commands call it so no edit can produce a file that would not open).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import Any, Callable

from .layouts import LayoutError, load_layout
from .project_model import (BALLOON_KINDS, BOOK_INCHES, FORMAT, MAX_CHARACTER_NAME, SCHEMA_VERSION, SCHEDULERS,
                            Balloon, BookSettings, Character, GenerationSettings, Page, Panel, Project, ProjectError,
                            SlotFill)

__all__ = ["project_to_dict", "project_from_dict", "validate_project", "check_relative_path", "ASSET_ID_RE",
           "ID_RE", "known_page_presets"]

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ASSET_ID_RE = re.compile(r"^[0-9a-f]{64}$")
SUBJECT_RE = re.compile(r"^[^\s,]{1,40}$")
MAX_SEED = 2**63 - 1
MAX_TEXT = 10_000


def known_page_presets() -> frozenset[str] | None:
    """Preset ids from ``app.page_presets.PRESETS`` when that module exists, else None (any id accepted)."""
    try:
        from . import page_presets  # type: ignore[attr-defined]
    except ImportError:
        return None
    presets = getattr(page_presets, "PRESETS", None)
    if presets is None:
        return None
    if isinstance(presets, dict):
        return frozenset(str(k) for k in presets)
    return frozenset(str(getattr(p, "id", p)) for p in presets)


# --------------------------------------------------------------------------------------------------- readers
def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except Exception:  # noqa: BLE001 - huge ints, deep nesting, foreign objects: describe, never crash
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(path: str, expected: str, value: Any) -> ProjectError:
    return ProjectError(f"expected {expected}, got {_show(value)}", path=path)


def _obj(value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "an object", value)
    for key in value:
        if key not in required and key not in optional:
            raise ProjectError(f"unknown field {key!r}", path=path or "project.json",
                               hint="The file may come from a newer version of Consistory Studio; update the app.")
    for key in required:
        if key not in value:
            raise ProjectError("this required field is missing", path=_join(path, key))
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _str(value: Any, path: str, *, nonempty: bool = False, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise _fail(path, "a non-empty text" if nonempty else "a text", value)
    if nonempty and not value.strip():
        raise _fail(path, "a non-empty text", value)
    if len(value) > max_len:
        raise ProjectError(f"this text is longer than {max_len} characters", path=path)
    return value


def _int(value: Any, path: str, lo: int, hi: int, what: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(path, what or f"a whole number between {lo} and {hi}", value)
    return value


def _float(value: Any, path: str, lo: float, hi: float, what: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
            or not math.isfinite(value):
        raise _fail(path, what or f"a number between {lo:g} and {hi:g}", value)
    return float(value)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "true or false", value)
    return value


def _opt(fn: Callable[..., Any]) -> Callable[..., Any]:
    def read(value: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        return None if value is None else fn(value, path, *args, **kwargs)
    return read


def _list(value: Any, path: str, item: Callable[[Any, str], Any], *, max_len: int = 10_000) -> tuple:
    if not isinstance(value, list):
        raise _fail(path, "a list", value)
    if len(value) > max_len:
        raise ProjectError(f"this list has more than {max_len} entries", path=path)
    return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))


def _id(value: Any, path: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise _fail(path, "an id of 1-64 letters, digits, '-' or '_'", value)
    return value


def _asset_id(value: Any, path: str) -> str:
    if isinstance(value, str) and ASSET_ID_RE.match(value):
        return value
    if isinstance(value, str):
        if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
            raise ProjectError(f"asset references must stay inside the project folder, got the absolute path "
                               f"{_show(value)}", path=path, hint="Re-add the image from inside the project.")
        if ".." in re.split(r"[\\/]", value):
            raise ProjectError(f"asset references must stay inside the project folder, got {_show(value)} "
                               f"which leads out of it with '..'", path=path)
    raise _fail(path, "an asset id (64 lowercase hex digits of the image's sha256)", value)


def check_relative_path(value: Any, path: str) -> str:
    """A project-relative file reference (POSIX separators): refuse absolute paths, '..', empty parts."""
    if not isinstance(value, str) or not value:
        raise _fail(path, "a relative file path inside the project folder", value)
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or "\\" in value or "\x00" in value:
        raise ProjectError(f"file references must be relative paths inside the project folder, got "
                           f"{_show(value)}", path=path, hint="Re-import the file into the project.")
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ProjectError(f"file references must stay inside the project folder, got {_show(value)}",
                           path=path, hint="Re-import the file into the project.")
    return value


def _subject(value: Any, path: str) -> str:
    if not isinstance(value, str) or not SUBJECT_RE.match(value):
        raise _fail(path, "a single subject word such as \"fox\"", value)
    return value


# ----------------------------------------------------------------------------------------------- parsers v2
def _book(v: Any, path: str) -> BookSettings:
    d = _obj(v, path, ("title",), ("page_preset", "orientation", "bleed_in", "margin_in", "gutter_in",
                                    "facing_pages", "interior"))
    preset = _str(d.get("page_preset", "us-comic"), _join(path, "page_preset"), nonempty=True, max_len=64)
    known = known_page_presets()
    if known is not None and preset not in known:
        raise ProjectError(f"unknown page preset {_show(preset)}", path=_join(path, "page_preset"),
                           hint=f"Choose one of: {', '.join(sorted(known))}.")
    orientation = d.get("orientation", "portrait")
    if orientation not in ("portrait", "landscape"):
        raise _fail(_join(path, "orientation"), '"portrait" or "landscape"', orientation)
    return BookSettings(
        title=_str(d["title"], _join(path, "title"), max_len=500), page_preset=preset, orientation=orientation,
        bleed_in=_float(d.get("bleed_in", 0.125), _join(path, "bleed_in"), 0.0, BOOK_INCHES["bleed_in"]),
        margin_in=_float(d.get("margin_in", 0.375), _join(path, "margin_in"), 0.0, BOOK_INCHES["margin_in"]),
        gutter_in=_float(d.get("gutter_in", 0.125), _join(path, "gutter_in"), 0.0, BOOK_INCHES["gutter_in"]),
        facing_pages=_bool(d.get("facing_pages", True), _join(path, "facing_pages")),
        interior=_bool(d.get("interior", True), _join(path, "interior")))


def _generation(v: Any, path: str) -> GenerationSettings:
    d = _obj(v, path, (), ("steps", "guidance", "scheduler"))
    scheduler = d.get("scheduler", "ddim")
    if scheduler not in SCHEDULERS:
        raise _fail(_join(path, "scheduler"), " or ".join(f'"{s}"' for s in SCHEDULERS), scheduler)
    return GenerationSettings(steps=_int(d.get("steps", 30), _join(path, "steps"), 1, 1000),
                              guidance=_float(d.get("guidance", 5.0), _join(path, "guidance"), 0.0, 50.0),
                              scheduler=scheduler)


def _character(v: Any, path: str) -> Character:
    d = _obj(v, path, ("id", "name", "description", "subjects"),
             ("anchor_prompts", "anchor_seeds", "identity_file", "dropout"))
    subjects = _list(d["subjects"], _join(path, "subjects"), _subject, max_len=8)
    if not subjects:
        raise ProjectError("a character needs at least one subject word (for example \"fox\")",
                           path=_join(path, "subjects"))
    prompts = _list(d.get("anchor_prompts", []), _join(path, "anchor_prompts"),
                    lambda x, p: _str(x, p, nonempty=True), max_len=16)
    seeds = _list(d.get("anchor_seeds", []), _join(path, "anchor_seeds"),
                  lambda x, p: _int(x, p, 0, MAX_SEED, "a whole number ≥ 0"), max_len=16)
    description = _str(d["description"], _join(path, "description"))
    c = Character(id=_id(d["id"], _join(path, "id")), name=_str(d["name"], _join(path, "name"), nonempty=True,
                                                                  max_len=MAX_CHARACTER_NAME),
                  description=description, subjects=subjects, anchor_prompts=prompts, anchor_seeds=seeds,
                  identity_file=_opt(check_relative_path)(d.get("identity_file"), _join(path, "identity_file")),
                  dropout=_float(d.get("dropout", 0.5), _join(path, "dropout"), 0.0, 0.99))
    if not c.anchor_prompts:
        raise ProjectError("give anchor prompts or a description to derive them from",
                           path=_join(path, "anchor_prompts"))
    if len(c.anchor_seeds) != len(c.anchor_prompts):
        raise ProjectError(f"there are {len(c.anchor_prompts)} anchor prompts but {len(c.anchor_seeds)} anchor "
                           "seeds; give one seed per prompt", path=_join(path, "anchor_seeds"))
    for i, prompt in enumerate(c.anchor_prompts):
        words = set(re.findall(r"[\w'-]+", prompt.lower()))
        for s in c.subjects:
            if s.lower() not in words:
                raise ProjectError(f"the anchor prompt {_show(prompt)} does not contain the subject word {s!r}",
                                   path=f"{_join(path, 'anchor_prompts')}[{i}]",
                                   hint=f"Add {s!r} to the prompt.")
    return c


def _panel(v: Any, path: str) -> Panel:
    d = _obj(v, path, ("id", "text"), ("character_ids", "style", "negative_prompt", "seed", "seed_locked", "width",
                                       "height", "alternates", "current", "dropout"))
    size = "a multiple of 16 between 16 and 4096 pixels"   # 16: small built-in models draw 64 px panels
    p = Panel(
        id=_id(d["id"], _join(path, "id")), text=_str(d["text"], _join(path, "text")),
        character_ids=_list(d.get("character_ids", []), _join(path, "character_ids"), _id, max_len=8),
        style=_str(d.get("style", ""), _join(path, "style")),
        negative_prompt=_str(d.get("negative_prompt", ""), _join(path, "negative_prompt")),
        seed=_int(d.get("seed", 0), _join(path, "seed"), 0, MAX_SEED, "a whole number ≥ 0"),
        seed_locked=_bool(d.get("seed_locked", False), _join(path, "seed_locked")),
        width=_int(d.get("width", 512), _join(path, "width"), 16, 4096, size),
        height=_int(d.get("height", 512), _join(path, "height"), 16, 4096, size),
        alternates=_list(d.get("alternates", []), _join(path, "alternates"), _asset_id),
        current=_opt(_asset_id)(d.get("current"), _join(path, "current")),
        dropout=_opt(_float)(d.get("dropout"), _join(path, "dropout"), 0.0, 0.99))
    for key, value in (("width", p.width), ("height", p.height)):
        if value % 16:
            raise _fail(_join(path, key), size, value)
    if len(set(p.character_ids)) != len(p.character_ids):
        raise ProjectError("a character is listed twice", path=_join(path, "character_ids"))
    if len(set(p.alternates)) != len(p.alternates):
        raise ProjectError("an image is listed twice", path=_join(path, "alternates"))
    if p.current is not None and p.current not in p.alternates:
        raise ProjectError("the image in use is not one of the panel's alternates", path=_join(path, "current"))
    return p


def _slot(v: Any, path: str) -> SlotFill:
    d = _obj(v, path, (), ("panel_id", "focus_x", "focus_y", "zoom"))
    return SlotFill(panel_id=_opt(_id)(d.get("panel_id"), _join(path, "panel_id")),
                    focus_x=_float(d.get("focus_x", 0.5), _join(path, "focus_x"), 0.0, 1.0),
                    focus_y=_float(d.get("focus_y", 0.5), _join(path, "focus_y"), 0.0, 1.0),
                    zoom=_float(d.get("zoom", 1.0), _join(path, "zoom"), 0.1, 10.0))


def _balloon(v: Any, path: str) -> Balloon:
    d = _obj(v, path, ("id", "kind", "text", "x", "y", "w", "h"), ("tail_x", "tail_y", "font_size_pt", "font"))
    if d["kind"] not in BALLOON_KINDS:
        raise _fail(_join(path, "kind"), " or ".join(f'"{k}"' for k in BALLOON_KINDS), d["kind"])
    frac = (0.0, 1.0)
    b = Balloon(id=_id(d["id"], _join(path, "id")), kind=d["kind"], text=_str(d["text"], _join(path, "text")),
                x=_float(d["x"], _join(path, "x"), *frac), y=_float(d["y"], _join(path, "y"), *frac),
                w=_float(d["w"], _join(path, "w"), 0.01, 1.0), h=_float(d["h"], _join(path, "h"), 0.01, 1.0),
                tail_x=_opt(_float)(d.get("tail_x"), _join(path, "tail_x"), *frac),
                tail_y=_opt(_float)(d.get("tail_y"), _join(path, "tail_y"), *frac),
                font_size_pt=_opt(_float)(d.get("font_size_pt"), _join(path, "font_size_pt"), 4.0, 200.0),
                font=_str(d.get("font", "comic"), _join(path, "font"), nonempty=True, max_len=100))
    if (b.tail_x is None) != (b.tail_y is None):
        raise ProjectError("give both tail_x and tail_y, or neither", path=_join(path, "tail_x"))
    if b.kind == "caption" and b.tail_x is not None:
        raise ProjectError("captions have no tail; set tail_x and tail_y to null", path=_join(path, "tail_x"))
    return b


def _page(v: Any, path: str) -> Page:
    d = _obj(v, path, ("id", "layout"), ("gutter_in", "slots", "balloons"))
    page = Page(id=_id(d["id"], _join(path, "id")),
                layout=_str(d["layout"], _join(path, "layout"), nonempty=True, max_len=64),
                gutter_in=_opt(_float)(d.get("gutter_in"), _join(path, "gutter_in"), 0.0, 2.0),
                slots=_list(d.get("slots", []), _join(path, "slots"), _slot, max_len=64),
                balloons=_list(d.get("balloons", []), _join(path, "balloons"), _balloon, max_len=500))
    _unique([b.id for b in page.balloons], _join(path, "balloons"), "balloon")
    return _padded(page)


def _padded(page: Page) -> Page:
    """A page with an empty fill for each of its layout's slots that the file leaves out (``slots`` is optional, and
    a version 1 file kept only the filled ones), so every slot can be framed and filled. An unknown layout stays as
    it is: the page editor and the export say so."""
    try:
        count = len(load_layout(page.layout).slots)
    except LayoutError:
        return page
    if len(page.slots) >= count:
        return page
    return replace(page, slots=page.slots + (SlotFill(),) * (count - len(page.slots)))


def _unique(ids: list[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise ProjectError(f"the {what} id {x!r} is used twice", path=f"{path}[{i}].id")
        seen.add(x)


def _project_v2(d: dict[str, Any]) -> Project:
    _obj(d, "", ("format", "schema_version", "title", "book"),
         ("characters", "panels", "pages", "model_source", "generation"))
    project = Project(
        title=_str(d["title"], "title", max_len=500), book=_book(d["book"], "book"),
        characters=_list(d.get("characters", []), "characters", _character, max_len=200),
        panels=_list(d.get("panels", []), "panels", _panel),
        pages=_list(d.get("pages", []), "pages", _page, max_len=2000),
        model_source=_opt(_str)(d.get("model_source"), "model_source", nonempty=True, max_len=2000),
        generation=_generation(d.get("generation", {}), "generation"))
    _unique([c.id for c in project.characters], "characters", "character")
    _unique([p.id for p in project.panels], "panels", "panel")
    _unique([p.id for p in project.pages], "pages", "page")
    characters = {c.id for c in project.characters}
    panels = {p.id for p in project.panels}
    for i, p in enumerate(project.panels):
        for j, cid in enumerate(p.character_ids):
            if cid not in characters:
                raise ProjectError(f"the panel names the character {cid!r}, which is not in the project",
                                   path=f"panels[{i}].character_ids[{j}]")
    for i, page in enumerate(project.pages):
        for j, slot in enumerate(page.slots):
            if slot.panel_id is not None and slot.panel_id not in panels:
                raise ProjectError(f"the slot shows the panel {slot.panel_id!r}, which is not in the project",
                                   path=f"pages[{i}].slots[{j}].panel_id")
    return project


# --------------------------------------------------------------------------------------------------- public
def project_from_dict(data: Any) -> Project:
    """Check, migrate and build. Raises only ``ProjectError`` (with the JSON path of the bad field)."""
    from .project_migrations import migrate

    try:
        return _project_v2(migrate(data))
    except ProjectError:
        raise
    except RecursionError:
        raise ProjectError("the file is nested too deeply to be a project") from None


def _balloon_dict(b: Balloon) -> dict[str, Any]:
    return {"id": b.id, "kind": b.kind, "text": b.text, "x": b.x, "y": b.y, "w": b.w, "h": b.h,
            "tail_x": b.tail_x, "tail_y": b.tail_y, "font_size_pt": b.font_size_pt, "font": b.font}


def project_to_dict(project: Project) -> dict[str, Any]:
    """The current-schema JSON object (key order is stable, so saving the same project gives the same bytes)."""
    b, g = project.book, project.generation
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "title": project.title,
        "model_source": project.model_source,
        "book": {"title": b.title, "page_preset": b.page_preset, "orientation": b.orientation,
                 "bleed_in": b.bleed_in, "margin_in": b.margin_in, "gutter_in": b.gutter_in,
                 "facing_pages": b.facing_pages, "interior": b.interior},
        "generation": {"steps": g.steps, "guidance": g.guidance, "scheduler": g.scheduler},
        "characters": [{"id": c.id, "name": c.name, "description": c.description, "subjects": list(c.subjects),
                        "anchor_prompts": list(c.anchor_prompts), "anchor_seeds": list(c.anchor_seeds),
                        "identity_file": c.identity_file, "dropout": c.dropout} for c in project.characters],
        "panels": [{"id": p.id, "text": p.text, "character_ids": list(p.character_ids), "style": p.style,
                    "negative_prompt": p.negative_prompt, "seed": p.seed, "seed_locked": p.seed_locked,
                    "width": p.width, "height": p.height, "alternates": list(p.alternates), "current": p.current,
                    "dropout": p.dropout} for p in project.panels],
        "pages": [{"id": pg.id, "layout": pg.layout, "gutter_in": pg.gutter_in,
                   "slots": [{"panel_id": s.panel_id, "focus_x": s.focus_x, "focus_y": s.focus_y, "zoom": s.zoom}
                             for s in pg.slots],
                   "balloons": [_balloon_dict(x) for x in pg.balloons]} for pg in project.pages],
    }


def validate_project(project: Project) -> Project:
    """Check a project built in code by the file rules; returns the normalised project (floats as float)."""
    try:
        data = project_to_dict(project)
    except (AttributeError, TypeError) as exc:
        raise ProjectError(f"the project is malformed ({exc})") from None
    return _project_v2(data)
