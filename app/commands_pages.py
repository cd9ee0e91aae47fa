"""Page, slot and balloon commands (same contract as ``app.commands``, which re-exports them)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .command_base import Command, FieldEdit, checked, insert_at
from .project_model import Balloon, Page, Project, ProjectError, SlotFill

__all__ = ["AddPage", "RemovePage", "MovePage", "SetLayout", "EditPage", "AssignPanel", "SetFraming",
           "AddBalloon", "RemoveBalloon", "EditBalloon", "MoveBalloon", "MoveTail"]


class AddPage(Command):
    def __init__(self, page: Page, index: int | None = None):
        self.page, self.index, self.text = page, index, "Add page"

    def do(self, project: Project) -> Project:
        if any(p.id == self.page.id for p in project.pages):
            raise ProjectError(f"There is already a page with the id {self.page.id!r}.")
        return checked(replace(project, pages=insert_at(project.pages, self.page, self.index)))

    def undo(self, project: Project) -> Project:
        return replace(project, pages=tuple(p for p in project.pages if p.id != self.page.id))


class RemovePage(Command):
    """Removes a page (its panels stay in the project)."""

    def __init__(self, page_id: str):
        self.page_id, self.text = page_id, "Remove page"
        self._saved: tuple[int, Page] | None = None

    def do(self, project: Project) -> Project:
        page = project.page(self.page_id)
        self._saved = (project.pages.index(page), page)
        return replace(project, pages=tuple(p for p in project.pages if p.id != self.page_id))

    def undo(self, project: Project) -> Project:
        assert self._saved is not None, "undo before do"
        index, page = self._saved
        return checked(replace(project, pages=insert_at(project.pages, page, index)))


class MovePage(Command):
    """Moves a page to position ``index`` (0-based, clamped)."""

    def __init__(self, page_id: str, index: int):
        self.page_id, self.index, self.text = page_id, index, "Move page"
        self._old: int | None = None

    @staticmethod
    def _move(project: Project, page_id: str, index: int) -> tuple[Project, int]:
        page = project.page(page_id)
        old = project.pages.index(page)
        rest = tuple(p for p in project.pages if p.id != page_id)
        return replace(project, pages=insert_at(rest, page, index)), old

    def do(self, project: Project) -> Project:
        project, self._old = self._move(project, self.page_id, self.index)
        return project

    def undo(self, project: Project) -> Project:
        assert self._old is not None, "undo before do"
        return self._move(project, self.page_id, self._old)[0]


class SetLayout(Command):
    """Switch a page to another layout template with ``slot_count`` slots (from the template). Slot fills are
    kept in order; fills beyond the new count are dropped (undo restores them)."""

    def __init__(self, page_id: str, layout: str, slot_count: int):
        if not isinstance(slot_count, int) or slot_count < 0:
            raise ProjectError(f"A layout needs a slot count ≥ 0, got {slot_count!r}.")
        self.page_id, self.layout, self.slot_count, self.text = page_id, layout, slot_count, "Change layout"
        self._old: tuple[str, tuple[SlotFill, ...]] | None = None

    def do(self, project: Project) -> Project:
        page = project.page(self.page_id)
        slots = page.slots[:self.slot_count] + (SlotFill(),) * max(0, self.slot_count - len(page.slots))
        result = checked(project.with_page(replace(page, layout=self.layout, slots=slots)))
        self._old = (page.layout, page.slots)
        return result

    def undo(self, project: Project) -> Project:
        assert self._old is not None, "undo before do"
        layout, slots = self._old
        return checked(project.with_page(replace(project.page(self.page_id), layout=layout, slots=slots)))


class EditPage(FieldEdit):
    """Edit a page's own gutter (``gutter_in``; None = the book's)."""

    allowed = frozenset({"gutter_in"})
    text = "Edit page"

    def __init__(self, page_id: str, **changes: Any):
        super().__init__(**changes)
        self.page_id = page_id

    def target(self) -> tuple:
        return (self.page_id,)

    def get(self, project: Project) -> Page:
        return project.page(self.page_id)

    def put(self, project: Project, obj: Page) -> Project:
        return project.with_page(obj)


def _slot(page: Page, index: int) -> SlotFill:
    if not isinstance(index, int) or not 0 <= index < len(page.slots):
        raise ProjectError(f"Page {page.id!r} has no slot {index!r} (it has {len(page.slots)}).")
    return page.slots[index]


def _with_slot(project: Project, page: Page, index: int, fill: SlotFill) -> Project:
    slots = list(page.slots)
    slots[index] = fill
    return project.with_page(replace(page, slots=tuple(slots)))


class AssignPanel(Command):
    """Put a panel (or nothing) in a slot; the framing resets to centred, zoom 1. Undo restores the old fill."""

    def __init__(self, page_id: str, slot_index: int, panel_id: str | None):
        self.page_id, self.slot_index, self.panel_id, self.text = page_id, slot_index, panel_id, "Place panel"
        self._old: SlotFill | None = None

    def do(self, project: Project) -> Project:
        page = project.page(self.page_id)
        old = _slot(page, self.slot_index)
        if self.panel_id is not None:
            project.panel(self.panel_id)
        result = _with_slot(project, page, self.slot_index, SlotFill(panel_id=self.panel_id))
        self._old = old
        return result

    def undo(self, project: Project) -> Project:
        assert self._old is not None, "undo before do"
        page = project.page(self.page_id)
        return checked(_with_slot(project, page, self.slot_index, self._old))


class SetFraming(FieldEdit):
    """Pan/zoom a panel inside its slot (``focus_x``, ``focus_y`` in 0..1, ``zoom``). Merges while dragging."""

    allowed = frozenset({"focus_x", "focus_y", "zoom"})
    merge_fields = allowed
    text = "Frame panel"

    def __init__(self, page_id: str, slot_index: int, **changes: Any):
        super().__init__(**changes)
        self.page_id, self.slot_index = page_id, slot_index

    def target(self) -> tuple:
        return (self.page_id, self.slot_index)

    def get(self, project: Project) -> SlotFill:
        return _slot(project.page(self.page_id), self.slot_index)

    def put(self, project: Project, obj: SlotFill) -> Project:
        return _with_slot(project, project.page(self.page_id), self.slot_index, obj)


class AddBalloon(Command):
    def __init__(self, page_id: str, balloon: Balloon, index: int | None = None):
        self.page_id, self.balloon, self.index = page_id, balloon, index
        self.text = "Add caption" if balloon.kind == "caption" else "Add balloon"

    def do(self, project: Project) -> Project:
        page = project.page(self.page_id)
        if any(b.id == self.balloon.id for b in page.balloons):
            raise ProjectError(f"Page {self.page_id!r} already has a balloon with the id {self.balloon.id!r}.")
        return checked(project.with_page(replace(page, balloons=insert_at(page.balloons, self.balloon,
                                                                            self.index))))

    def undo(self, project: Project) -> Project:
        page = project.page(self.page_id)
        return project.with_page(replace(page, balloons=tuple(b for b in page.balloons if b.id != self.balloon.id)))


class RemoveBalloon(Command):
    def __init__(self, page_id: str, balloon_id: str):
        self.page_id, self.balloon_id, self.text = page_id, balloon_id, "Remove balloon"
        self._saved: tuple[int, Balloon] | None = None

    def do(self, project: Project) -> Project:
        page = project.page(self.page_id)
        balloon = page.balloon(self.balloon_id)
        self._saved = (page.balloons.index(balloon), balloon)
        return project.with_page(replace(page, balloons=tuple(b for b in page.balloons if b.id != self.balloon_id)))

    def undo(self, project: Project) -> Project:
        assert self._saved is not None, "undo before do"
        index, balloon = self._saved
        page = project.page(self.page_id)
        return checked(project.with_page(replace(page, balloons=insert_at(page.balloons, balloon, index))))


class EditBalloon(FieldEdit):
    """Edit any balloon field but its id. Turning a balloon into a caption also removes its tail."""

    allowed = frozenset({"kind", "text", "x", "y", "w", "h", "tail_x", "tail_y", "font_size_pt", "font"})
    merge_fields = frozenset({"text"})
    text = "Edit balloon"

    def __init__(self, page_id: str, balloon_id: str, **changes: Any):
        super().__init__(**changes)
        self.page_id, self.balloon_id = page_id, balloon_id

    def target(self) -> tuple:
        return (self.page_id, self.balloon_id)

    def get(self, project: Project) -> Balloon:
        return project.page(self.page_id).balloon(self.balloon_id)

    def put(self, project: Project, obj: Balloon) -> Project:
        page = project.page(self.page_id)
        return project.with_page(replace(page, balloons=tuple(obj if b.id == obj.id else b for b in page.balloons)))

    def new_values(self, obj: Balloon) -> dict[str, Any]:
        new = dict(self.changes)
        if new.get("kind") == "caption" and "tail_x" not in new and "tail_y" not in new:
            new["tail_x"] = new["tail_y"] = None
        return new


class MoveBalloon(EditBalloon):
    """Move/resize a balloon body (x, y and optionally w, h). Merges while dragging."""

    text = "Move balloon"

    def __init__(self, page_id: str, balloon_id: str, x: float, y: float, w: float | None = None,
                 h: float | None = None):
        changes = {"x": x, "y": y, **({"w": w} if w is not None else {}), **({"h": h} if h is not None else {})}
        super().__init__(page_id, balloon_id, **changes)
        self.merge_fields = frozenset({"x", "y", "w", "h"})


class MoveTail(EditBalloon):
    """Move a balloon's tail tip; ``None, None`` removes the tail. Merges while dragging."""

    text = "Move tail"

    def __init__(self, page_id: str, balloon_id: str, tail_x: float | None, tail_y: float | None):
        super().__init__(page_id, balloon_id, tail_x=tail_x, tail_y=tail_y)
        self.merge_fields = frozenset({"tail_x", "tail_y"})
