"""Helpers shared by the GUI tests."""

from __future__ import annotations

import gc

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.project_store import save_project
from app.settings import Settings
from ui.gui_gc import GuiThreadCollector


@pytest.fixture(scope="session", autouse=True)
def gui_thread_collector(qapp):
    """The app's own arrangement for the whole GUI test run: the automatic collector off, collections from a
    timer on the GUI thread (``ui.gui_gc``)."""
    collector = GuiThreadCollector(qapp)
    yield collector
    collector.stop()


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread():
    """Collect each test's garbage on the GUI thread when it ends, so no test inherits the last one's windows. (Left
    to the automatic collector, a test's windows and dialogs, which live in reference cycles, were once freed on
    the worker thread while it built the next test's model: a segmentation fault in CI. ``gui_thread_collector``
    keeps every collection on this thread.)"""
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


def _answer_next_question(button: QMessageBox.StandardButton, seen: list[str], *more) -> None:
    """Click ``button`` in the next message box (then ``more`` buttons in the boxes after it); each box's text is
    appended to ``seen``."""
    def poll():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox) or not box.isVisible():
            QTimer.singleShot(20, poll)
            return
        seen.append(box.text())
        box.button(button).click()
        if more:
            _answer_next_question(more[0], seen, *more[1:])
    QTimer.singleShot(0, poll)


@pytest.fixture
def answer_next_question():
    return _answer_next_question


@pytest.fixture
def window_on(qtbot, tmp_path):
    """``window_on(project, steps=2)``: a shown main window (``tiny`` model, 64 px panels, ``steps`` steps) with
    ``project`` saved in ``tmp_path/book`` and opened; closed without questions (jobs cancelled) after the test."""
    from ui.main_window import MainWindow

    windows = []

    def make(project, *, steps: int = 2):
        settings = Settings(tmp_path / "settings.ini")
        settings.model_source, settings.steps, settings.max_size = "tiny", steps, 64
        settings.first_run_done = True
        folder = tmp_path / "book"
        folder.mkdir()
        save_project(project, folder)
        win = MainWindow(settings)
        win.show()
        qtbot.waitExposed(win)
        assert win.files.open_folder(folder)
        windows.append(win)
        return win

    yield make
    for win in windows:
        win.confirm_close_without_asking()


@pytest.fixture
def crashed_book(qtbot, tmp_path):
    """``(settings, folder)``: a project saved empty whose autosave holds one panel "a crashed panel", left by a
    window that then died without asking or saving."""
    from app.project_model import BookSettings, Project
    from ui.main_window import MainWindow

    settings = Settings(tmp_path / "settings.ini")
    settings.first_run_done = True
    folder = tmp_path / "book"
    folder.mkdir()
    save_project(Project(title="Old", book=BookSettings(title="Old")), folder)
    first = MainWindow(settings)
    assert first.files.open_folder(folder)
    qtbot.mouseClick(first.browser.sections["panel"].add_button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(first.panel_editor.text_edit, "a crashed panel")
    first.files.autosave()  # what the timer and every finished job do
    first.session.set_modified(False)  # the crash: nothing asks, nothing is saved
    first.confirm_close_without_asking()
    return settings, folder
