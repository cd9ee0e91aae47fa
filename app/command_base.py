"""The base of every edit command: ``Command`` (do/undo over immutable projects) and ``FieldEdit`` (set fields
of one object, undo restores them, optional merging). See ``app.commands`` for the contract."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .project_codec import validate_project
from .project_model import Project, ProjectError

__all__ = ["Command", "FieldEdit", "checked", "insert_at"]


def checked(project: Project) -> Project:
    """Validate an edited project (raises ``ProjectError`` naming the bad field) and return it."""
    validate_project(project)
    return project


def insert_at(items: tuple, item: Any, index: int | None) -> tuple:
    index = len(items) if index is None else max(0, min(index, len(items)))
    return items[:index] + (item,) + items[index:]


class Command:
    """Base class: ``do``/``undo`` over projects, a label, optional merging."""

    text = "Edit"
    merge_key: tuple | None = None

    def do(self, project: Project) -> Project:  # pragma: no cover - abstract
        raise NotImplementedError

    def undo(self, project: Project) -> Project:  # pragma: no cover - abstract
        raise NotImplementedError

    def merge_with(self, other: "Command") -> bool:
        return False


class FieldEdit(Command):
    """Set some fields of one object; undo restores their previous values. Subclasses say which object."""

    allowed: frozenset[str] = frozenset()
    merge_fields: frozenset[str] = frozenset()  # edits touching only these fields merge with the next such edit

    def __init__(self, **changes: Any):
        bad = sorted(set(changes) - self.allowed)
        if bad or not changes:
            raise ProjectError(f"{type(self).__name__} cannot change {', '.join(bad) or 'nothing'}; it changes "
                               f"{', '.join(sorted(self.allowed))}.")
        self.changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        self._old: dict[str, Any] | None = None

    def target(self) -> tuple:
        return ()

    def get(self, project: Project) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def put(self, project: Project, obj: Any) -> Project:  # pragma: no cover - abstract
        raise NotImplementedError

    def new_values(self, obj: Any) -> dict[str, Any]:
        return dict(self.changes)

    def do(self, project: Project) -> Project:
        obj = self.get(project)
        new = self.new_values(obj)
        old = {k: getattr(obj, k) for k in new}
        result = checked(self.put(project, replace(obj, **new)))
        if self._old is None:  # a redo keeps the values from before the first do
            self._old = old
        return result

    def undo(self, project: Project) -> Project:
        assert self._old is not None, "undo before do"
        return checked(self.put(project, replace(self.get(project), **self._old)))

    @property
    def merge_key(self) -> tuple | None:  # type: ignore[override]
        if self.merge_fields and set(self.changes) <= self.merge_fields:
            return (type(self).__name__, *self.target(), *sorted(self.changes))
        return None

    def merge_with(self, other: Command) -> bool:
        if self.merge_key is None or getattr(other, "merge_key", None) != self.merge_key:
            return False
        assert isinstance(other, FieldEdit)
        self.absorb(other)
        return True

    def absorb(self, other: "FieldEdit") -> None:
        """Fold ``other`` (the next edit of one gesture, already done) into this one: its new values win, a field
        only this one set keeps its value (the first keystroke's ``identity_file=None``, say), and undo restores
        every field to its value from before the gesture."""
        self.changes = {**self.changes, **other.changes}
        if self._old is not None:
            for k, v in (other._old or {}).items():
                self._old.setdefault(k, v)
