"""The character library dialog: every character of the user's library with its first anchor as a thumbnail, its
subject words and the model it was made with; unreadable files are listed greyed out with the reason.

``LibraryDialog(library)`` takes an ``app.character_library.CharacterLibrary``. "Add to project" accepts the
dialog; ``chosen_ids()`` are then the selected readable entries' ids. The dialog also keeps the library: "Move to
trash" moves the selected characters (unreadable ones too) to the library's trash, and "Show trash" lists the trash,
where "Restore" brings characters back and "Empty trash…" deletes them for good after asking. A refusal is one
sentence in the dialog; nothing is lost.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QMessageBox, QPushButton, QVBoxLayout, QWidget)

from app.character_library import LibraryError
from ui.image_cache import placeholder_pixmap

__all__ = ["LibraryDialog"]

_THUMB = 128
_ERROR_ROLE = Qt.ItemDataRole.UserRole + 1
_NAME_ROLE = Qt.ItemDataRole.UserRole + 2


class LibraryDialog(QDialog):
    def __init__(self, library, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.setObjectName("library_dialog")
        self.setWindowTitle("Character library")
        self.resize(720, 500)
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("library_list")
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(_THUMB, _THUMB))
        self.list.setGridSize(QSize(_THUMB + 48, _THUMB + 70))
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.empty_label = QLabel()
        self.empty_label.setWordWrap(True)
        self.message_label = QLabel()
        self.message_label.setObjectName("library_message")
        self.message_label.setWordWrap(True)

        self.trash_toggle = QPushButton("Show trash")
        self.trash_toggle.setObjectName("library_show_trash")
        self.trash_toggle.setCheckable(True)
        self.trash_button = QPushButton("Move to trash")
        self.trash_button.setObjectName("library_move_to_trash")
        self.restore_button = QPushButton("Restore")
        self.restore_button.setObjectName("library_restore")
        self.empty_button = QPushButton("Empty trash…")
        self.empty_button.setObjectName("library_empty_trash")
        manage = QHBoxLayout()
        for b in (self.trash_button, self.restore_button, self.empty_button):
            manage.addWidget(b)
        manage.addStretch(1)
        manage.addWidget(self.trash_toggle)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.add_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.add_button.setText("Add to project")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Close")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.list.itemSelectionChanged.connect(self._update)
        self.list.itemDoubleClicked.connect(self._double_clicked)
        self.trash_toggle.toggled.connect(self._show_view)
        self.trash_button.clicked.connect(self._move_to_trash)
        self.restore_button.clicked.connect(self._restore)
        self.empty_button.clicked.connect(self._empty_trash)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.message_label)
        layout.addLayout(manage)
        layout.addWidget(self.buttons)
        self._show_view(False)

    @property
    def showing_trash(self) -> bool:
        return self.trash_toggle.isChecked()

    def chosen_ids(self) -> list[str]:
        """The selected characters that can be added (none while the trash is shown)."""
        if self.showing_trash:
            return []
        return [i.data(Qt.ItemDataRole.UserRole) for i in self.list.selectedItems() if not i.data(_ERROR_ROLE)]

    def entry_ids(self) -> list[str]:
        """The ids listed now, in order."""
        return [self.list.item(r).data(Qt.ItemDataRole.UserRole) for r in range(self.list.count())]

    # -- the two views ------------------------------------------------------------------------------------------
    def _show_view(self, trash: bool) -> None:
        if trash:
            self.intro.setText("Characters moved to the trash. <b>Restore</b> puts them back in the library; "
                               "<b>Empty trash…</b> deletes them for good.")
            self.empty_label.setText("The trash is empty.")
        else:
            self.intro.setText("Characters saved in your library can be used in any project. Choose one or more and "
                               "press <b>Add to project</b>; each keeps its anchors, so it looks the same here as "
                               "before.")
            self.empty_label.setText("The library is empty. Characters are saved there when their anchors are "
                                     "generated, or with “Import .character…”.")
        self.trash_toggle.setText("Back to the library" if trash else "Show trash")
        self.trash_button.setVisible(not trash)
        self.restore_button.setVisible(trash)
        self.empty_button.setVisible(trash)
        self._fill()

    def _fill(self) -> None:
        try:
            entries = self.library.trash() if self.showing_trash else self.library.list()
        except (LibraryError, OSError) as exc:
            entries = []
            self._say(f"The library could not be read: {exc}", error=True)
        self.list.clear()
        for e in entries:
            self.list.addItem(self._item(e))
        self.empty_label.setVisible(not entries)
        self._update()

    @staticmethod
    def _item(e) -> QListWidgetItem:
        pix = QPixmap()
        if not (e.thumbnail_png and pix.loadFromData(bytes(e.thumbnail_png))):
            pix = placeholder_pixmap(_THUMB, (e.name or "?")[:1].upper())
        else:
            pix = pix.scaled(_THUMB, _THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
        words = ", ".join(e.subjects)
        item = QListWidgetItem(QIcon(pix), f"{e.name}\n{words}" if words else e.name)
        item.setData(Qt.ItemDataRole.UserRole, e.id)
        item.setData(_ERROR_ROLE, e.error or "")
        item.setData(_NAME_ROLE, e.name)
        if e.error:  # selectable, so that it can go to the trash, but never added to a project
            item.setForeground(QBrush(QColor("#999999")))
            item.setToolTip(f"This file cannot be used: {e.error}")
        else:
            item.setToolTip(f"{e.description}\n{e.anchors} anchors, made with “{e.model_source}”")
        return item

    # -- actions ------------------------------------------------------------------------------------------------
    def _selected(self) -> list[tuple[str, str]]:
        return [(i.data(Qt.ItemDataRole.UserRole), i.data(_NAME_ROLE)) for i in self.list.selectedItems()]

    def _apply(self, action, done: str) -> None:
        """Run ``action(id)`` on each selected character; report what was done and the first refusal."""
        names, error = [], ""
        for entry_id, name in self._selected():
            try:
                action(entry_id)
            except (LibraryError, OSError) as exc:
                error = f"“{name}”: {exc}"
                break
            names.append(f"“{name}”")
        self._fill()
        if error:
            self._say(error, error=True)
        elif names:
            self._say(f"{done} {', '.join(names)}.")

    def _move_to_trash(self) -> None:
        self._apply(self.library.delete, "Moved to the trash:")

    def _restore(self) -> None:
        self._apply(self.library.restore, "Restored to the library:")

    def _empty_trash(self) -> None:
        n = self.list.count()
        answer = QMessageBox.question(
            self, "Empty the trash",
            f"Delete the {n} character{'s' if n != 1 else ''} in the trash for good? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            deleted = self.library.empty_trash()
        except (LibraryError, OSError) as exc:
            self._fill()
            self._say(f"The trash could not be emptied: {exc}", error=True)
            return
        self._fill()
        self._say(f"Deleted {deleted} character{'s' if deleted != 1 else ''} for good.")

    def _double_clicked(self, _item) -> None:
        if self.chosen_ids():
            self.accept()

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message_label.setStyleSheet("color: #b00020;" if error else "")
        self.message_label.setText(text)

    def _update(self) -> None:
        selected = bool(self.list.selectedItems())
        self.add_button.setEnabled(bool(self.chosen_ids()))
        self.add_button.setVisible(not self.showing_trash)
        self.trash_button.setEnabled(selected)
        self.restore_button.setEnabled(selected)
        self.empty_button.setEnabled(self.list.count() > 0)
