"""Export dialog: format (print PDF, screen PDF, PNG pages, CBZ), where to write it, and the dpi of raster pages."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

__all__ = ["ExportDialog"]

_FORMATS = (("pdf", "Print PDF (with bleed and trim boxes)", ".pdf"), ("screen-pdf", "Screen PDF", ".pdf"),
            ("png", "PNG picture per page", ".png"), ("cbz", "Comic book archive (CBZ)", ".cbz"))


class ExportDialog(QDialog):
    def __init__(self, suggested: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export book")
        self.setObjectName("export_dialog")
        self.format_combo = QComboBox()
        for fmt, label, _ in _FORMATS:
            self.format_combo.addItem(label, fmt)
        self.path_edit = QLineEdit(str(suggested))
        self.path_edit.setObjectName("export_path")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.dpi_spin = QSpinBox()
        self.dpi_spin.setRange(72, 600)
        self.dpi_spin.setValue(300)
        self.dpi_spin.setSuffix(" dpi")
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #b00020;")
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Format:", self.format_combo)
        form.addRow("Write to:", row)
        form.addRow("Pictures at:", self.dpi_spin)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self._sync_dpi()
        self.resize(560, self.sizeHint().height())

    def fmt(self) -> str:
        return str(self.format_combo.currentData())

    def out_path(self) -> Path:
        return Path(self.path_edit.text().strip()).expanduser()

    def dpi(self) -> int:
        return self.dpi_spin.value()

    def _format_changed(self) -> None:
        suffix = _FORMATS[self.format_combo.currentIndex()][2]
        path = self.out_path()
        if path.name:
            self.path_edit.setText(str(path.with_suffix(suffix)))
        self._sync_dpi()

    def _sync_dpi(self) -> None:
        """The dpi applies to raster pages only: PDFs embed each picture at its own resolution."""
        self.dpi_spin.setEnabled(self.fmt() in ("png", "cbz"))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path_edit.text())
        if path:
            self.path_edit.setText(path)

    def accept(self) -> None:
        if not self.path_edit.text().strip():
            self.error_label.setText("Say where to write the book.")
            return
        super().accept()
