"""The observable state the desktop app binds to: the open project, its folder, the selection, the modified flag.

Contract (QtCore only, GUI thread):
- ``AppSession.project`` is an immutable ``app.project_model.Project`` (or ``None``); every edit replaces it with
  a new value through ``apply(new_project, change)``, so an undo step is just the previous value.
- The selection always names an item of the project (or nothing): an edit that removes the selected item clears it.
- Signals, each emitted only when the value really changes (STYLE §2.5–2.7):
  ``project_changed(object)`` — another project was opened/created (views rebind);
  ``project_edited(object ProjectChange)`` — the open project was edited: which kinds and ids, and who did it;
  ``folder_changed(str)``, ``selection_changed(str kind, str id)``, ``modified_changed(bool)``.
- ``ProjectChange(kinds, ids, initiator)``: kinds ⊂ {"book", "character", "panel", "page", "asset"}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

__all__ = ["AppSession", "ProjectChange", "SELECTION_KINDS"]

SELECTION_KINDS = ("", "book", "character", "panel", "page")


@dataclass(frozen=True)
class ProjectChange:
    kinds: frozenset[str]
    ids: frozenset[str] = field(default_factory=frozenset)
    initiator: object | None = None

    @staticmethod
    def of(kind: str, *ids: str, initiator: object | None = None) -> "ProjectChange":
        return ProjectChange(frozenset({kind}), frozenset(i for i in ids if i), initiator)

    def touches(self, kind: str, item_id: str | None = None) -> bool:
        return kind in self.kinds and (item_id is None or not self.ids or item_id in self.ids)


class AppSession(QObject):
    project_changed = Signal(object)
    project_edited = Signal(object)
    folder_changed = Signal(str)
    selection_changed = Signal(str, str)
    modified_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._project: Any = None
        self._folder: Path | None = None
        self._selection: tuple[str, str] = ("", "")
        self._modified = False

    # -- project ----------------------------------------------------------------------------------------------
    @property
    def project(self) -> Any:
        return self._project

    @property
    def folder(self) -> Path | None:
        return self._folder

    def open(self, project: Any, folder: str | Path | None) -> None:
        """Show another project (new, opened or recovered). Clears the selection and the modified flag."""
        self._project = project
        new_folder = Path(folder) if folder is not None else None
        if new_folder != self._folder:
            self._folder = new_folder
            self.folder_changed.emit(str(new_folder or ""))
        self.select("", "")
        self.set_modified(False)
        self.project_changed.emit(project)

    def set_folder(self, folder: str | Path) -> None:
        folder = Path(folder)
        if folder != self._folder:
            self._folder = folder
            self.folder_changed.emit(str(folder))

    def apply(self, project: Any, change: ProjectChange) -> None:
        """Replace the project with an edited version (called by undo commands and finished jobs). A selection
        whose item the edit removed (an undo of "+ Panel", say) is cleared first, so no view edits an item that
        is gone."""
        if project is self._project:
            return
        self._project = project
        self.set_modified(True)
        kind, item_id = self._selection
        lookup = {"character": self.character, "panel": self.panel, "page": self.page}.get(kind)
        if lookup is not None and lookup(item_id) is None:
            self.select("", "")
        self.project_edited.emit(change)

    # -- selection / modified ---------------------------------------------------------------------------------
    @property
    def selection(self) -> tuple[str, str]:
        return self._selection

    def select(self, kind: str, item_id: str) -> None:
        if kind not in SELECTION_KINDS:
            raise ValueError(f"Unknown selection kind {kind!r}; use one of {SELECTION_KINDS}.")
        if (kind, item_id) != self._selection:
            self._selection = (kind, item_id)
            self.selection_changed.emit(kind, item_id)

    @property
    def modified(self) -> bool:
        return self._modified

    def set_modified(self, modified: bool) -> None:
        if modified != self._modified:
            self._modified = modified
            self.modified_changed.emit(modified)

    # -- lookups ----------------------------------------------------------------------------------------------
    def character(self, character_id: str) -> Any:
        return _find(getattr(self._project, "characters", ()), character_id)

    def panel(self, panel_id: str) -> Any:
        return _find(getattr(self._project, "panels", ()), panel_id)

    def page(self, page_id: str) -> Any:
        return _find(getattr(self._project, "pages", ()), page_id)


def _find(items: Any, item_id: str) -> Any:
    for item in items or ():
        if item.id == item_id:
            return item
    return None
