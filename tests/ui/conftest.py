"""Helpers shared by the GUI tests."""

from __future__ import annotations

import gc

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread():
    """Collect each test's garbage on the GUI thread when it ends. A test's windows and dialogs live in reference
    cycles; left to the cyclic collector, they may be freed whenever any thread allocates, and a Qt widget freed on
    the worker thread (while it builds the next test's model) crashes the process (seen once in CI: a segmentation
    fault in ``gc`` inside the job queue's model loading)."""
    yield
    gc.collect()


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
