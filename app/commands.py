"""Every edit the GUI makes, as a small command object (the GUI wraps each in a ``QUndoCommand``).

Contract (pure functions over immutable projects, no Qt):
- ``cmd.do(project) -> Project`` returns the edited copy; ``cmd.undo(project) -> Project`` returns a copy with
  exactly this command's change reverted. ``undo`` touches only what ``do`` changed, so it is correct even when
  other changes happened in between (a finished job adding an image to a panel, applied outside the stack).
  Call ``undo`` only after ``do``, and ``do`` again for redo.
- A command that would produce an invalid project raises ``ProjectError`` (with the field path) and changes
  nothing, itself included: every result passes ``validate_project``, so no edit can make a file that won't open.
- ``text`` is the undo-menu label. Drag-like commands (``SetFraming``, ``MoveBalloon``, ``MoveTail``, text edits)
  have ``merge_key`` and ``merge_with(other) -> bool`` so a drag or typing folds into one undo step
  (``QUndoCommand.id``/``mergeWith``).
- Choosing another alternate only re-points ``Panel.current``; no command deletes an image file.
Page, slot and balloon commands live in ``app.commands_pages`` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .command_base import Command, FieldEdit, checked, insert_at
from .commands_pages import (AddBalloon, AddPage, AssignPanel, EditBalloon, EditPage, MoveBalloon,
                             MovePage, MoveTail, RemoveBalloon, RemovePage, SetFraming, SetLayout)
from .project_model import (BookSettings, Character, GenerationSettings, Panel, Project, ProjectError,
                            default_anchor_prompts)

__all__ = ["Command", "FieldEdit", "AddCharacter", "RemoveCharacter", "EditCharacter", "AddPanel", "RemovePanel",
           "EditPanel", "ChooseAlternate", "AddAlternates", "EditBook", "EditProject",
           "AddPage", "RemovePage", "MovePage", "SetLayout", "EditPage", "AssignPanel", "SetFraming",
           "AddBalloon", "RemoveBalloon", "EditBalloon", "MoveBalloon", "MoveTail"]


# ----------------------------------------------------------------------------------------------- characters
class AddCharacter(Command):
    def __init__(self, character: Character, index: int | None = None):
        self.character, self.index, self.text = character, index, f"Add character {character.name}"

    def do(self, project: Project) -> Project:
        if any(c.id == self.character.id for c in project.characters):
            raise ProjectError(f"There is already a character with the id {self.character.id!r}.")
        return checked(replace(project, characters=insert_at(project.characters, self.character, self.index)))

    def undo(self, project: Project) -> Project:
        # redo brings back the character as it is now: a saved identity arrives outside the undo stack
        self.character = project.character(self.character.id)
        return replace(project, characters=tuple(c for c in project.characters if c.id != self.character.id))


class RemoveCharacter(Command):
    """Removes the character and takes it out of every panel; undo puts both back where they were."""

    def __init__(self, character_id: str):
        self.character_id, self.text = character_id, "Remove character"
        self._saved: tuple[int, Character, list[tuple[str, int]]] | None = None

    def do(self, project: Project) -> Project:
        character = project.character(self.character_id)
        index = project.characters.index(character)
        uses = [(p.id, p.character_ids.index(self.character_id)) for p in project.panels
                if self.character_id in p.character_ids]
        panels = tuple(replace(p, character_ids=tuple(c for c in p.character_ids if c != self.character_id))
                       for p in project.panels)
        self._saved = (index, character, uses)
        return replace(project, characters=tuple(c for c in project.characters if c.id != self.character_id),
                       panels=panels)

    def undo(self, project: Project) -> Project:
        assert self._saved is not None, "undo before do"
        index, character, uses = self._saved
        project = replace(project, characters=insert_at(project.characters, character, index))
        for panel_id, pos in uses:
            panel = project.panel(panel_id)
            project = project.with_panel(replace(panel, character_ids=insert_at(panel.character_ids,
                                                                                   self.character_id, pos)))
        return checked(project)


class EditCharacter(FieldEdit):
    """Edit a character. A new ``description`` re-derives anchor prompts that were still the derived default."""

    allowed = frozenset({"name", "description", "subjects", "anchor_prompts", "anchor_seeds", "identity_file",
                         "dropout"})
    merge_fields = frozenset({"name", "description"})
    text = "Edit character"

    def __init__(self, character_id: str, **changes: Any):
        super().__init__(**changes)
        self.character_id = character_id

    def target(self) -> tuple:
        return (self.character_id,)

    def get(self, project: Project) -> Character:
        return project.character(self.character_id)

    def put(self, project: Project, obj: Character) -> Project:
        return project.with_character(obj)

    def new_values(self, obj: Character) -> dict[str, Any]:
        new = dict(self.changes)
        if ("description" in new and "anchor_prompts" not in new
                and obj.anchor_prompts == default_anchor_prompts(obj.description)):
            new["anchor_prompts"] = default_anchor_prompts(new["description"])
        return new


# --------------------------------------------------------------------------------------------------- panels
class AddPanel(Command):
    def __init__(self, panel: Panel, index: int | None = None):
        self.panel, self.index, self.text = panel, index, "Add panel"

    def do(self, project: Project) -> Project:
        if any(p.id == self.panel.id for p in project.panels):
            raise ProjectError(f"There is already a panel with the id {self.panel.id!r}.")
        return checked(replace(project, panels=insert_at(project.panels, self.panel, self.index)))

    def undo(self, project: Project) -> Project:
        # redo brings back the panel as it is now: its pictures arrive outside the undo stack
        self.panel = project.panel(self.panel.id)
        return replace(project, panels=tuple(p for p in project.panels if p.id != self.panel.id))


class RemovePanel(Command):
    """Removes the panel and empties the slots that showed it (its images stay in ``assets/``)."""

    def __init__(self, panel_id: str):
        self.panel_id, self.text = panel_id, "Remove panel"
        self._saved: tuple[int, Panel, list[tuple[str, int]]] | None = None

    def do(self, project: Project) -> Project:
        panel = project.panel(self.panel_id)
        index = project.panels.index(panel)
        slots = [(pg.id, i) for pg in project.pages for i, s in enumerate(pg.slots) if s.panel_id == self.panel_id]
        pages = tuple(replace(pg, slots=tuple(replace(s, panel_id=None) if s.panel_id == self.panel_id else s
                                              for s in pg.slots)) for pg in project.pages)
        self._saved = (index, panel, slots)
        return replace(project, panels=tuple(p for p in project.panels if p.id != self.panel_id), pages=pages)

    def undo(self, project: Project) -> Project:
        assert self._saved is not None, "undo before do"
        index, panel, slots = self._saved
        project = replace(project, panels=insert_at(project.panels, panel, index))
        for page_id, i in slots:
            page = project.page(page_id)
            if i < len(page.slots):
                fills = list(page.slots)
                fills[i] = replace(fills[i], panel_id=self.panel_id)
                project = project.with_page(replace(page, slots=tuple(fills)))
        return checked(project)


class EditPanel(FieldEdit):
    """Edit a panel's prompt, characters, style, negative prompt, seed, lock, size or dropout."""

    allowed = frozenset({"text", "character_ids", "style", "negative_prompt", "seed", "seed_locked", "width",
                         "height", "dropout"})
    merge_fields = frozenset({"text", "style", "negative_prompt"})
    text = "Edit panel"

    def __init__(self, panel_id: str, **changes: Any):
        super().__init__(**changes)
        self.panel_id = panel_id

    def target(self) -> tuple:
        return (self.panel_id,)

    def get(self, project: Project) -> Panel:
        return project.panel(self.panel_id)

    def put(self, project: Project, obj: Panel) -> Project:
        return project.with_panel(obj)


class ChooseAlternate(Command):
    """Show another of the panel's generated images. Only re-points ``current``; nothing is deleted."""

    def __init__(self, panel_id: str, asset_id: str | None):
        self.panel_id, self.asset_id, self.text = panel_id, asset_id, "Choose image"
        self._old: str | None = None

    def do(self, project: Project) -> Project:
        panel = project.panel(self.panel_id)
        if self.asset_id is not None and self.asset_id not in panel.alternates:
            raise ProjectError(f"The image {self.asset_id[:12]}… is not one of panel {self.panel_id!r}'s images.")
        self._old = panel.current
        return project.with_panel(replace(panel, current=self.asset_id))

    def undo(self, project: Project) -> Project:
        panel = project.panel(self.panel_id)
        old = self._old if self._old in panel.alternates else panel.current
        return project.with_panel(replace(panel, current=old))


class AddAlternates(Command):
    """Reference newly generated images on a panel (and show the last one). Undo drops only the references it
    added; the files stay in ``assets/``."""

    def __init__(self, panel_id: str, asset_ids: tuple[str, ...] | list[str], make_current: bool = True):
        self.panel_id, self.asset_ids, self.make_current = panel_id, tuple(asset_ids), make_current
        self.text = "Add images"
        self._added: tuple[str, ...] = ()
        self._old_current: str | None = None

    def do(self, project: Project) -> Project:
        panel = project.panel(self.panel_id)
        self._added = tuple(a for a in dict.fromkeys(self.asset_ids) if a not in panel.alternates)
        self._old_current = panel.current
        current = self.asset_ids[-1] if self.make_current and self.asset_ids else panel.current
        return checked(project.with_panel(replace(panel, alternates=panel.alternates + self._added,
                                                  current=current)))

    def undo(self, project: Project) -> Project:
        panel = project.panel(self.panel_id)
        alternates = tuple(a for a in panel.alternates if a not in self._added)
        current = self._old_current if self._old_current in alternates else None
        return project.with_panel(replace(panel, alternates=alternates, current=current))


# ----------------------------------------------------------------------------------------------------- book
class EditBook(FieldEdit):
    """Edit the book's print settings (title, preset, orientation, bleed, margins, gutter, facing, interior)."""

    allowed = frozenset(f for f in BookSettings.__dataclass_fields__)
    merge_fields = frozenset({"title"})
    text = "Edit book settings"

    def get(self, project: Project) -> BookSettings:
        return project.book

    def put(self, project: Project, obj: BookSettings) -> Project:
        return replace(project, book=obj)


class EditProject(FieldEdit):
    """Edit the project's title, model source or generation settings (``generation=GenerationSettings(...)``)."""

    allowed = frozenset({"title", "model_source", "generation"})
    merge_fields = frozenset({"title"})
    text = "Edit project settings"

    def __init__(self, **changes: Any):
        super().__init__(**changes)
        gen = self.changes.get("generation")
        if gen is not None and not isinstance(gen, GenerationSettings):
            raise ProjectError("generation must be a GenerationSettings.")

    def get(self, project: Project) -> Project:
        return project

    def put(self, project: Project, obj: Project) -> Project:
        return obj

