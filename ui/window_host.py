"""``WindowHost``: what the main window's action helpers (``ui.project_files``, ``ui.character_library_actions``)
use of the window that owns them.

The helpers are typed against this protocol, not against ``ui.main_window.MainWindow``, so the window imports
its helpers and no helper imports the window back. The owner must also be a ``QObject``: it is each helper's
Qt parent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from PySide6.QtGui import QCursor, QUndoStack
from PySide6.QtWidgets import QMessageBox, QStatusBar

from app.app_session import AppSession
from app.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from ui.generation_controller import GenerationController

__all__ = ["WindowHost"]


class WindowHost(Protocol):
    session: AppSession
    settings: Settings
    undo_stack: QUndoStack
    generation: "GenerationController"
    last_message: str  # the last message shown to the user (tests read it)

    def show_error(self, message: str) -> None: ...

    def show_info(self, title: str, text: str, icon: QMessageBox.Icon = ...) -> QMessageBox: ...

    def show_status_error(self, message: str) -> None: ...

    def statusBar(self) -> QStatusBar: ...  # noqa: N802 (Qt's name)

    def cursor(self) -> QCursor: ...
