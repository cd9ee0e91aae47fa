"""What each answer to "Save the changes?", "Recover unsaved changes?" and a damaged project.json does to the files on
disk: Discard forgets the autosave, No to recovery keeps the unsaved edits aside, a recovered or backup project
stays "modified" through undo, and a damaged project.json offers its backup."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.project_model import BookSettings, Panel, Project
from app.project_store import (AUTOSAVE_FILE, BACKUP_FILE, DECLINED_AUTOSAVE_FILE, PROJECT_FILE, open_project,
                               read_project_file, recovery_available, save_project)
from app.settings import Settings
from ui.main_window import MainWindow


def test_discard_forgets_the_autosave_so_nothing_is_offered_back(qtbot, window_on, answer_next_question):
    w = window_on(Project(title="Safe", book=BookSettings(title="Safe"), panels=(Panel(id="p1", text="a"),)))
    folder = w.session.folder
    w.session.select("panel", "p1")
    qtbot.keyClicks(w.panel_editor.text_edit, " boat")
    w.files.autosave()
    assert recovery_available(folder)
    seen: list[str] = []
    answer_next_question(QMessageBox.StandardButton.Discard, seen)
    assert w.files.maybe_save()
    assert "Save the changes" in seen[0]
    assert not (folder / AUTOSAVE_FILE).exists() and not recovery_available(folder)
    assert open_project(folder).panel("p1").text == "a"


def test_cancel_keeps_the_autosave(qtbot, window_on, answer_next_question):
    w = window_on(Project(title="Safe", book=BookSettings(title="Safe"), panels=(Panel(id="p1", text="a"),)))
    w.session.select("panel", "p1")
    qtbot.keyClicks(w.panel_editor.text_edit, " boat")
    w.files.autosave()
    answer_next_question(QMessageBox.StandardButton.Cancel, [])
    assert not w.files.maybe_save()
    assert recovery_available(w.session.folder) and w.session.modified


def test_no_to_recovery_keeps_the_unsaved_edits_aside_from_later_autosaves(qtbot, crashed_book, answer_next_question):
    settings, folder = crashed_book
    second = MainWindow(settings)
    seen: list[str] = []
    answer_next_question(QMessageBox.StandardButton.No, seen)
    assert second.files.open_folder(folder)
    assert DECLINED_AUTOSAVE_FILE in seen[0]
    assert second.session.project.panels == () and not second.session.modified
    assert not (folder / AUTOSAVE_FILE).exists()
    # a new edit and its autosave do not overwrite what was declined
    qtbot.mouseClick(second.browser.sections["panel"].add_button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(second.panel_editor.text_edit, "a new panel")
    second.files.autosave()
    assert [p.text for p in read_project_file(folder / DECLINED_AUTOSAVE_FILE).panels] == ["a crashed panel"]
    assert [p.text for p in read_project_file(folder / AUTOSAVE_FILE).panels] == ["a new panel"]
    second.confirm_close_without_asking()


def test_a_recovered_project_stays_modified_when_its_first_edit_is_undone(qtbot, crashed_book, answer_next_question):
    settings, folder = crashed_book
    second = MainWindow(settings)
    answer_next_question(QMessageBox.StandardButton.Yes, [])
    assert second.files.open_folder(folder)
    pid = second.session.project.panels[0].id
    second.session.select("panel", pid)
    qtbot.keyClicks(second.panel_editor.text_edit, "!")
    assert second.session.panel(pid).text != "a crashed panel"
    second.undo_stack.undo()
    assert second.session.panel(pid).text == "a crashed panel"
    assert second.session.modified and second.windowTitle().startswith("Old*")  # project.json still has no panel
    second.confirm_close_without_asking()


def _damaged_with_backup(tmp_path) -> Path:
    folder = tmp_path / "book"
    folder.mkdir()
    first = Project(title="Kept", book=BookSettings(title="Kept"), panels=(Panel(id="p1", text="first"),))
    save_project(first, folder)
    save_project(Project(title="Kept", book=BookSettings(title="Kept"),
                         panels=(Panel(id="p1", text="second"),)), folder)
    (folder / PROJECT_FILE).write_bytes(b'{"format": ')
    return folder


def test_a_damaged_project_offers_its_backup_and_saving_writes_it_back(qtbot, tmp_path, answer_next_question):
    folder = _damaged_with_backup(tmp_path)
    settings = Settings(tmp_path / "settings.ini")
    settings.first_run_done = True
    w = MainWindow(settings)
    seen: list[str] = []
    answer_next_question(QMessageBox.StandardButton.Yes, seen)
    assert w.files.open_folder(folder)
    assert "could not be read" in seen[0] and BACKUP_FILE in seen[0]
    assert w.session.panel("p1").text == "first" and w.session.modified
    assert (folder / PROJECT_FILE).read_bytes() == b'{"format": '  # left as it is until the user saves
    assert w.settings.get("recent_projects")[0] == str(folder.resolve())
    assert w.files.save()
    assert open_project(folder).panel("p1").text == "first"
    w.confirm_close_without_asking()


def test_declining_the_backup_reports_the_damage_and_changes_nothing(qtbot, tmp_path, answer_next_question):
    folder = _damaged_with_backup(tmp_path)
    settings = Settings(tmp_path / "settings.ini")
    settings.first_run_done = True
    w = MainWindow(settings)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    answer_next_question(QMessageBox.StandardButton.No, [])
    assert not w.files.open_folder(folder)
    assert w.session.project is None
    assert "Could not open" in w.last_message and BACKUP_FILE in w.last_message
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    w.confirm_close_without_asking()


def test_likeness_slider_end_is_a_value_the_project_accepts(qtbot, window_on):
    w = window_on(Project(title="Safe", book=BookSettings(title="Safe"), panels=(Panel(id="p1", text="a"),)))
    w.session.select("panel", "p1")
    w.panel_editor.dropout_slider.setValue(w.panel_editor.dropout_slider.maximum())
    assert w.session.panel("p1").dropout == 0.99
    assert "dropout" not in w.last_message
