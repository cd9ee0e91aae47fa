"""Helpers shared by the GUI tests."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication


def _run_in_next_modal(handler) -> None:
    """Run ``handler(dialog)`` on the next modal dialog, from inside its event loop."""
    def poll():
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(20, poll)
            return
        handler(dialog)
    QTimer.singleShot(0, poll)


@pytest.fixture
def in_modal():
    return _run_in_next_modal
