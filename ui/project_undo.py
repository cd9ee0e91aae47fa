"""Undo/redo for every project edit: each ``app.commands`` command object wrapped in a ``QUndoCommand``.

``redo`` applies ``cmd.do`` to the session's current project and ``undo`` applies ``cmd.undo`` (which reverts only
this command's change, so images that finished in between stay). Consecutive edits with the same merge key
(typing into one field, dragging one balloon) fold into one undo step: the first command keeps the values from
before the gesture, the later ones' new values are folded in (``FieldEdit.absorb``).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QUndoCommand, QUndoStack

from app.app_session import AppSession, ProjectChange
from app.commands import Command, FieldEdit
from app.project_model import ProjectError

__all__ = ["CommandEdit", "push_command", "MERGE_ID"]

MERGE_ID = 7001


class CommandEdit(QUndoCommand):
    def __init__(self, session: AppSession, cmd: Command, change: ProjectChange, merge_key: Any = None) -> None:
        super().__init__(cmd.text)
        self._session, self.cmd, self._change = session, cmd, change
        self.merge_key = merge_key if merge_key is not None else getattr(cmd, "merge_key", None)

    def id(self) -> int:  # noqa: A003 - Qt API
        return MERGE_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt API
        if not isinstance(other, CommandEdit) or self.merge_key is None or other.merge_key != self.merge_key:
            return False
        if self.cmd.merge_with(other.cmd):
            return True
        if isinstance(self.cmd, FieldEdit) and type(self.cmd) is type(other.cmd):
            self.cmd.absorb(other.cmd)
            return True
        return False

    def redo(self) -> None:
        self._session.apply(self.cmd.do(self._session.project), self._change)

    def undo(self) -> None:
        self._session.apply(self.cmd.undo(self._session.project),
                            ProjectChange(self._change.kinds, self._change.ids, None))


def push_command(stack: QUndoStack, session: AppSession, cmd: Command, change: ProjectChange,
                 merge_key: Any = None) -> str | None:
    """Apply ``cmd`` as one undo step. Returns ``None``, or the one-sentence reason the edit was refused (then
    nothing changed). A command that changes nothing is not recorded."""
    try:
        after = cmd.do(session.project)
    except ProjectError as exc:
        return str(exc)
    if after == session.project:
        return None
    stack.push(CommandEdit(session, cmd, change, merge_key))
    return None
