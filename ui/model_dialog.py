"""Model dialog: choose what the engine runs (built-in model, hub id, local folder, .safetensors) and how
(device, precision, CPU offload, tiled decoding, steps, panel size). The choice is written to ``Settings`` on OK.

The hub size check runs on a ``QThreadPool`` thread (network); its answer comes back through a queued signal.
Downloads themselves happen when the worker loads the model; their progress shows in the queue dock.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QRadioButton, QSpinBox, QVBoxLayout, QWidget)

from app.model_sources import (SourceKind, built_in_sources, check_source, classify, format_bytes,
                               free_disk_bytes, hub_cache_dir, hub_download_size)
from app.settings import Settings

__all__ = ["ModelDialog"]


class _SizeSignals(QObject):
    done = Signal(str, int, str)  # repo id, bytes (-1 on error), error message


class _SizeTask(QRunnable):
    def __init__(self, repo_id: str, device: str, precision: str, signals: _SizeSignals) -> None:
        super().__init__()
        self.repo_id, self.device, self.precision, self.signals = repo_id, device, precision, signals

    def run(self) -> None:  # pool thread
        try:
            self.signals.done.emit(self.repo_id, hub_download_size(self.repo_id, self.device, self.precision), "")
        except OSError as exc:
            self.signals.done.emit(self.repo_id, -1, str(exc))


class ModelDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model")
        self.setObjectName("model_dialog")
        self._settings = settings
        self._size_signals = _SizeSignals(self)
        self._size_signals.done.connect(self._on_size)

        source_box = QGroupBox("Which model draws the pictures")
        grid = QGridLayout(source_box)
        self.kind_group = QButtonGroup(self)
        self.radio_built_in = QRadioButton("Built-in model")
        self.radio_hub = QRadioButton("Download from Hugging Face")
        self.radio_folder = QRadioButton("Local diffusers folder")
        self.radio_file = QRadioButton("Single .safetensors file")
        for i, (r, row) in enumerate(((self.radio_built_in, 0), (self.radio_hub, 2), (self.radio_folder, 5),
                                      (self.radio_file, 7))):
            self.kind_group.addButton(r, i)
            grid.addWidget(r, row, 0, 1, 3)

        self.built_in_combo = QComboBox()
        for source, label in built_in_sources():
            self.built_in_combo.addItem(label, source)
        grid.addWidget(self.built_in_combo, 1, 1, 1, 2)

        self.hub_edit = QLineEdit()
        self.hub_edit.setPlaceholderText("owner/name, e.g. stabilityai/stable-diffusion-xl-base-1.0")
        self.hub_check = QPushButton("Check size")
        self.hub_check.clicked.connect(self._check_size)
        grid.addWidget(self.hub_edit, 3, 1)
        grid.addWidget(self.hub_check, 3, 2)
        self.hub_info = QLabel()
        self.hub_info.setWordWrap(True)
        grid.addWidget(self.hub_info, 4, 1, 1, 2)

        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("a folder holding model_index.json")
        folder_browse = QPushButton("Browse…")
        folder_browse.clicked.connect(self._browse_folder)
        grid.addWidget(self.folder_edit, 6, 1)
        grid.addWidget(folder_browse, 6, 2)

        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("a checkpoint ending in .safetensors")
        file_browse = QPushButton("Browse…")
        file_browse.clicked.connect(self._browse_file)
        grid.addWidget(self.file_edit, 8, 1)
        grid.addWidget(file_browse, 8, 2)
        grid.setColumnMinimumWidth(0, 24)
        grid.setColumnStretch(1, 1)

        run_box = QGroupBox("How it runs")
        form = QFormLayout(run_box)
        self.device_combo = QComboBox()
        for value, label in (("auto", "Automatic (GPU if there is one)"), ("cuda", "NVIDIA GPU (CUDA)"),
                             ("mps", "Apple GPU (MPS)"), ("cpu", "CPU (slow)")):
            if value != "mps" or sys.platform == "darwin" or settings.device == "mps":  # Apple GPUs: macOS only
                self.device_combo.addItem(label, value)
        self.precision_combo = QComboBox()
        for value, label in (("auto", "Automatic (half on GPU, full on CPU)"), ("float16", "Half (float16)"),
                             ("bfloat16", "bfloat16"), ("float32", "Full (float32)")):
            self.precision_combo.addItem(label, value)
        self.offload_check = QCheckBox("Offload model parts to CPU memory (NVIDIA GPUs with little memory)")
        self.tiling_check = QCheckBox("Decode pictures in tiles (less memory for large panels)")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 200)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(16, 2048)
        self.size_spin.setSingleStep(64)
        self.size_spin.setSuffix(" px")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 16)
        form.addRow("Device:", self.device_combo)
        form.addRow("Precision:", self.precision_combo)
        form.addRow("", self.offload_check)
        form.addRow("", self.tiling_check)
        form.addRow("Steps per picture:", self.steps_spin)
        form.addRow("Longest side of a panel:", self.size_spin)
        form.addRow("Pictures per batch:", self.batch_spin)

        self.error_label = QLabel()
        self.error_label.setObjectName("model_dialog_error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.hide()

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(source_box)
        layout.addWidget(run_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        for r in (self.radio_built_in, self.radio_hub, self.radio_folder, self.radio_file):
            r.toggled.connect(self._update_enabled)
        self._load()
        self.resize(560, self.sizeHint().height())

    # -- settings <-> widgets ------------------------------------------------------------------------------------
    def _load(self) -> None:
        s = self._settings
        source = s.model_source or (built_in_sources()[0][0])
        kind = classify(source)
        if kind is SourceKind.built_in:
            self.radio_built_in.setChecked(True)
            idx = self.built_in_combo.findData(source)
            if idx < 0:
                self.built_in_combo.addItem(source, source)
                idx = self.built_in_combo.count() - 1
            self.built_in_combo.setCurrentIndex(idx)
        elif kind is SourceKind.hub:
            self.radio_hub.setChecked(True)
            self.hub_edit.setText(source)
        elif kind is SourceKind.folder:
            self.radio_folder.setChecked(True)
            self.folder_edit.setText(source)
        else:
            self.radio_file.setChecked(True)
            self.file_edit.setText(source)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(s.device)))
        self.precision_combo.setCurrentIndex(max(0, self.precision_combo.findData(s.precision)))
        self.offload_check.setChecked(s.cpu_offload)
        self.tiling_check.setChecked(s.vae_tiling)
        self.steps_spin.setValue(s.steps)
        self.size_spin.setValue(s.max_size)
        self.batch_spin.setValue(s.max_batch)
        self._update_enabled()
        self._show_disk()

    def chosen_source(self) -> str:
        if self.radio_hub.isChecked():
            return self.hub_edit.text().strip()
        if self.radio_folder.isChecked():
            return self.folder_edit.text().strip()
        if self.radio_file.isChecked():
            return self.file_edit.text().strip()
        return str(self.built_in_combo.currentData())

    def accept(self) -> None:
        source = self.chosen_source()
        problem = check_source(source)
        if problem:
            self.error_label.setText(problem)
            self.error_label.show()
            return
        s = self._settings
        s.model_source = source
        s.device = self.device_combo.currentData()
        s.precision = self.precision_combo.currentData()
        s.cpu_offload = self.offload_check.isChecked()
        s.vae_tiling = self.tiling_check.isChecked()
        s.steps = self.steps_spin.value()
        s.max_size = self.size_spin.value()
        s.max_batch = self.batch_spin.value()
        s.sync()
        super().accept()

    # -- helpers -------------------------------------------------------------------------------------------------
    def _update_enabled(self) -> None:
        self.built_in_combo.setEnabled(self.radio_built_in.isChecked())
        self.hub_edit.setEnabled(self.radio_hub.isChecked())
        self.hub_check.setEnabled(self.radio_hub.isChecked())
        self.folder_edit.setEnabled(self.radio_folder.isChecked())
        self.file_edit.setEnabled(self.radio_file.isChecked())
        self.error_label.hide()

    def _show_disk(self, size_text: str = "Download size: press “Check size” (needs the network).") -> None:
        cache = hub_cache_dir()
        self.hub_info.setText(f"{size_text}\nFree disk in {cache}: {format_bytes(free_disk_bytes(cache))}. "
                              "An interrupted download resumes where it stopped.")

    def _check_size(self) -> None:
        repo = self.hub_edit.text().strip()
        problem = check_source(repo)
        if problem:
            self.error_label.setText(problem)
            self.error_label.show()
            return
        self.hub_check.setEnabled(False)
        self._show_disk("Download size: asking the hub…")
        QThreadPool.globalInstance().start(_SizeTask(repo, self.device_combo.currentData(),
                                                     self.precision_combo.currentData(), self._size_signals))

    def _on_size(self, repo: str, size: int, error: str) -> None:
        self.hub_check.setEnabled(self.radio_hub.isChecked())
        if size < 0:
            self._show_disk(f"Download size: unknown. {error}")
            return
        free = free_disk_bytes(hub_cache_dir())
        warn = "" if size < free else " Not enough free disk: free some space or choose another folder."
        self._show_disk(f"Still to download for {repo}: {format_bytes(size)}.{warn}")

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a diffusers model folder")
        if folder:
            self.folder_edit.setText(folder)
            self.radio_folder.setChecked(True)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.file_edit.setText(path)
            self.radio_file.setChecked(True)
