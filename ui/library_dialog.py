"""The "Add from library" dialog: every character of the user's library with its first anchor as a thumbnail, its
subject words and the model it was made with; unreadable files are listed greyed out with the reason.

``LibraryDialog(entries)`` takes ``app.character_library.LibraryEntry``s; ``chosen_ids()`` are the checked or
selected entries' ids after ``exec()`` returned Accepted.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout,
                               QWidget)

from ui.image_cache import placeholder_pixmap

__all__ = ["LibraryDialog"]

_THUMB = 128


class LibraryDialog(QDialog):
    def __init__(self, entries: list, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("library_dialog")
        self.setWindowTitle("Add characters from the library")
        self.resize(720, 460)
        intro = QLabel("Characters saved in your library can be used in any project. Choose one or more and press "
                       "<b>Add to project</b>; each keeps its anchors, so it looks the same here as before.")
        intro.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("library_list")
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(_THUMB, _THUMB))
        self.list.setGridSize(QSize(_THUMB + 48, _THUMB + 70))
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        for e in entries:
            pix = QPixmap()
            if not (e.thumbnail_png and pix.loadFromData(bytes(e.thumbnail_png))):
                pix = placeholder_pixmap(_THUMB, (e.name or "?")[:1].upper())
            else:
                pix = pix.scaled(_THUMB, _THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
            words = ", ".join(e.subjects)
            item = QListWidgetItem(QIcon(pix), f"{e.name}\n{words}" if words else e.name)
            item.setData(Qt.ItemDataRole.UserRole, e.id)
            if e.error:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled & ~Qt.ItemFlag.ItemIsSelectable)
                item.setToolTip(f"This file cannot be used: {e.error}")
            else:
                item.setToolTip(f"{e.description}\n{e.anchors} anchors, made with “{e.model_source}”")
            self.list.addItem(item)
        self.empty_label = QLabel("The library is empty. Characters are saved there when their anchors are "
                                  "generated, or with “Import .character…”.")
        self.empty_label.setWordWrap(True)
        self.empty_label.setVisible(not entries)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add to project")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.list.itemSelectionChanged.connect(self._update)
        self.list.itemDoubleClicked.connect(lambda _i: self.accept())
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.buttons)
        self._update()

    def chosen_ids(self) -> list[str]:
        return [i.data(Qt.ItemDataRole.UserRole) for i in self.list.selectedItems()]

    def _update(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.chosen_ids()))
