"""New-project dialog: a title and the folder the project goes into (typed or browsed; no native dialog needed)."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from app import project_store
from app.page_presets import PRESETS

__all__ = ["NewProjectDialog", "folder_name_for"]


def folder_name_for(title: str) -> str:
    name = re.sub(r"[^\w\- ]+", "", title).strip().replace(" ", "-").lower()
    return name or "storybook"


class NewProjectDialog(QDialog):
    def __init__(self, parent_folder: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.setObjectName("new_project_dialog")
        self.title_edit = QLineEdit()
        self.title_edit.setObjectName("new_project_title")
        self.title_edit.setPlaceholderText("e.g. Pip and the Lost Map")
        self.parent_edit = QLineEdit(str(parent_folder))
        self.parent_edit.setObjectName("new_project_parent")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.preset_combo = QComboBox()
        for pid, preset in PRESETS.items():
            self.preset_combo.addItem(preset.name, pid)
        self.where_label = QLabel()
        self.where_label.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.parent_edit, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Title:", self.title_edit)
        form.addRow("Save in:", row)
        form.addRow("Page size:", self.preset_combo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.where_label)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.title_edit.textChanged.connect(self._update)
        self.parent_edit.textChanged.connect(self._update)
        self._update()
        self.resize(520, self.sizeHint().height())

    def title(self) -> str:
        return self.title_edit.text().strip()

    def folder(self) -> Path:
        return Path(self.parent_edit.text().strip()).expanduser() / folder_name_for(self.title())

    def page_preset(self) -> str:
        return str(self.preset_combo.currentData())

    def _update(self) -> None:
        self.where_label.setText(f"The project will be the folder {self.folder()}")
        self.error_label.clear()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where to put the project", self.parent_edit.text())
        if folder:
            self.parent_edit.setText(folder)

    def accept(self) -> None:
        if not self.title():
            self.error_label.setText("Give the project a title.")
            return
        parent = Path(self.parent_edit.text().strip()).expanduser()
        if not parent.is_dir():
            self.error_label.setText(f"The folder {parent} does not exist. Choose an existing folder.")
            return
        problem = project_store.new_folder_problem(self.folder())
        if problem:
            self.error_label.setText(f"{problem}. Choose another title or folder.")
            return
        super().accept()
