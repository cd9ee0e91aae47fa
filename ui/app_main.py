"""Open the main window (placeholder until the desktop-app issue lands: says which model and device it would use)."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

from app.model_choice import default_model_description


def run(argv: list[str]) -> int:
    qapp = QApplication.instance() or QApplication(sys.argv[:1] + argv)
    win = QMainWindow()
    win.setWindowTitle("Consistory Studio")
    label = QLabel(default_model_description())
    label.setMargin(24)
    win.setCentralWidget(label)
    win.resize(640, 360)
    win.show()
    return qapp.exec()
