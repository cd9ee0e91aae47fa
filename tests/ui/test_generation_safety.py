"""Cancel now stops a running job within one step and leaves the project as it was; closing the window while a job
runs asks first, "No" keeps everything running, "Yes" stops the worker thread cleanly (no QThread abort)."""

from __future__ import annotations

import random

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from app.project_model import BookSettings, Panel, Project
from app.project_store import open_project, save_project
from ui.main_window import MainWindow

TIMEOUT_MS = 120_000


@pytest.fixture
def window(window_on):
    return window_on(Project(title="Safe", book=BookSettings(title="Safe"),
                             panels=(Panel(id="p1", text="a lighthouse at night", seed=random.randrange(1000)),)),
                     steps=200)


def test_cancel_now_stops_within_one_step_and_keeps_the_project(qtbot, window):
    w = window
    folder = w.session.folder
    before = open_project(folder)
    steps: list[int] = []
    cancelled_at: list[int] = []
    queue = w.generation.queue

    def on_progress(_job, step, _total, _png):
        steps.append(step)
        if step == 2 and not cancelled_at:
            cancelled_at.append(step)
            qtbot.mouseClick(w.queue_dock.cancel_now_button, Qt.MouseButton.LeftButton)

    queue.job_progress.connect(on_progress)
    w.session.select("panel", "p1")
    with qtbot.waitSignal(queue.job_failed, timeout=TIMEOUT_MS) as failed:
        qtbot.mouseClick(w.panel_editor.generate_button, Qt.MouseButton.LeftButton)
    job_id, kind = failed.args[0], failed.args[1]
    assert kind == "cancelled"
    assert cancelled_at == [2] and max(steps) <= 3, steps  # the step running when clicked, no further
    assert w.queue_dock.job_state(job_id) == "cancelled"
    assert not w.queue_dock.error_box.isVisible()  # a cancel is not an error
    assert w.session.panel("p1").current is None
    assert open_project(folder) == before
    assert not list((folder / "assets").glob("*.png")) if (folder / "assets").is_dir() else True
    assert queue.is_idle()


def test_closing_during_a_run_asks_then_stops_the_worker_cleanly(qtbot, window, answer_next_question):
    w = window
    queue = w.generation.queue
    w.session.select("panel", "p1")
    with qtbot.waitSignal(queue.job_progress, timeout=TIMEOUT_MS):
        qtbot.mouseClick(w.panel_editor.generate_button, Qt.MouseButton.LeftButton)

    seen: list[str] = []
    answer_next_question(QMessageBox.StandardButton.No, seen)
    assert not w.close()
    assert w.isVisible() and w.generation.busy() and queue.is_running()
    assert "still being drawn" in seen[0]

    answer_next_question(QMessageBox.StandardButton.Yes, seen, QMessageBox.StandardButton.Discard)
    assert w.close()
    assert len(seen) == 3 and "Save the changes" in seen[2] and not w.isVisible()
    assert not queue.is_running()  # joined before the window went away
    w.deleteLater()
    QApplication.processEvents()
    assert open_project(w.session.folder).panel("p1").current is None


def test_unsaved_work_is_autosaved_and_offered_back_on_the_next_start(qtbot, crashed_book, answer_next_question):
    from app.project_store import AUTOSAVE_FILE, recovery_available

    settings, folder = crashed_book
    assert (folder / AUTOSAVE_FILE).is_file() and recovery_available(folder)

    second = MainWindow(settings)
    seen: list[str] = []
    answer_next_question(QMessageBox.StandardButton.Yes, seen)
    assert second.files.open_folder(folder)
    assert "Recover those changes?" in seen[0]
    assert [p.text for p in second.session.project.panels] == ["a crashed panel"]
    assert second.session.modified and second.windowTitle().startswith("Old*")
    assert open_project(folder).panels == ()  # the saved file is untouched until the user saves
    second.confirm_close_without_asking()


def test_switching_project_during_a_run_asks_stops_it_and_keeps_its_result_out(qtbot, window, tmp_path,
                                                                               answer_next_question):
    w = window
    queue = w.generation.queue
    first_folder = w.session.folder
    w.session.select("panel", "p1")
    with qtbot.waitSignal(queue.job_progress, timeout=TIMEOUT_MS):
        qtbot.mouseClick(w.panel_editor.generate_button, Qt.MouseButton.LeftButton)
    running = queue.running_id

    w.generation.generate_missing()  # p1 is being drawn: it is not queued a second time
    assert queue.pending_ids() == [] and w.last_message == "The panels without a picture are already in the queue."
    for box in w.findChildren(QMessageBox, "message_box"):
        box.close()

    other = tmp_path / "other"
    other.mkdir()
    save_project(Project(title="Other", book=BookSettings(title="Other"),
                         panels=(Panel(id="p1", text="a boat at sea", seed=1),)), other)
    seen: list[str] = []
    answer_next_question(QMessageBox.StandardButton.No, seen)
    w.files.open_recent(other)
    assert "still being drawn" in seen[0] and w.session.folder == first_folder and queue.running_id == running

    answer_next_question(QMessageBox.StandardButton.Yes, seen, QMessageBox.StandardButton.Discard)
    with qtbot.waitSignal(queue.job_failed, timeout=TIMEOUT_MS) as failed:
        w.files.open_recent(other)
    assert failed.args[:2] == [running, "cancelled"] and "Save the changes" in seen[2]
    assert w.session.folder == other and w.session.project.title == "Other"
    # a result that arrives for the folder that was closed is not applied to the one now open
    w.generation._jobs["late"] = (w.generation._jobs.get(running, (None,))[0] or object(), first_folder)
    w.generation._on_finished("late", ["a" * 64])
    assert w.session.panel("p1").current is None and not w.session.modified
