"""Edits that used to leave the window in a broken state: an undo that removes the selected item, merged typing
undone and redone, the character sheet after the editor's own edits, a drag inside a page slot, Delete with a
balloon selected, switching project with unsaved edits, "Save as" into a folder that is not empty, a new project
over a file. No model is loaded here (pytest-qt fails a test on any exception raised inside a Qt slot)."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.project_model import (Balloon, BookSettings, Character, Page, Panel, Project, SlotFill,
                               default_anchor_prompts)
from app.project_store import PROJECT_FILE, open_project, save_project
from ui.new_project_dialog import NewProjectDialog


def _project() -> Project:
    fox = Character(id="fox", name="Mira", description="a small red fox", subjects=("fox",),
                    anchor_prompts=default_anchor_prompts("a small red fox"), anchor_seeds=(1, 2),
                    identity_file="characters/fox.character")
    page = Page(id="pg1", layout="2x2", slots=(SlotFill(panel_id="p1"), SlotFill(), SlotFill(), SlotFill()),
                balloons=(Balloon(id="b1", kind="speech", text="Hello!", x=0.1, y=0.1, w=0.3, h=0.15,
                                  tail_x=0.3, tail_y=0.4),))
    return Project(title="Safe", book=BookSettings(title="Safe"), characters=(fox,),
                   panels=(Panel(id="p1", text="Mira the fox reads a map", seed=5, character_ids=("fox",)),),
                   pages=(page,))


@pytest.fixture
def window(window_on):
    win = window_on(_project())
    win.resize(1200, 800)
    return win


@pytest.mark.parametrize("kind", ["character", "panel", "page"])
def test_undoing_an_add_leaves_no_editor_on_the_removed_item(qtbot, window, kind):
    w = window
    qtbot.mouseClick(w.browser.sections[kind].add_button, Qt.MouseButton.LeftButton)
    added = w.session.selection
    assert added[0] == kind and w.editors.currentWidget() is not w.welcome
    w.undo_stack.undo()
    assert w.session.selection == ("", "") and w.editors.currentWidget() is w.welcome
    assert not w.delete_action.isEnabled() and not w.generate_action.isEnabled()
    w.undo_stack.redo()  # the item is back; selecting it again works as before
    w.session.select(*added)
    assert w.editors.currentWidget() is not w.welcome
    if kind == "panel":
        qtbot.keyClicks(w.panel_editor.text_edit, "a fox")
        assert w.session.panel(added[1]).text == "a fox"


def test_typing_that_drops_the_identity_is_one_step_that_undoes_and_redoes_whole(qtbot, window):
    w = window
    w.session.select("character", "fox")
    ce = w.character_editor
    steps = w.undo_stack.count()
    ce.description_edit.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(ce.description_edit, " in a scarf")  # the anchor prompts follow the looks: identity dropped
    after = w.session.character("fox")
    assert after.anchor_prompts[0] == "a small red fox in a scarf" and after.identity_file is None
    assert w.undo_stack.count() == steps + 1  # every keystroke folded into one step
    w.undo_stack.undo()
    back = w.session.character("fox")
    assert (back.anchor_prompts, back.identity_file) == (_project().characters[0].anchor_prompts,
                                                         "characters/fox.character")
    w.undo_stack.redo()
    again = w.session.character("fox")
    assert (again.anchor_prompts, again.identity_file) == (after.anchor_prompts, None)  # the old identity stays off


def test_the_character_sheet_follows_the_editors_own_prompt_edits(qtbot, window):
    w = window
    w.character_editor.generate_anchors_requested.disconnect()  # no model here
    w.session.select("character", "fox")
    ce = w.character_editor
    assert ce.anchors.count() == 2
    qtbot.keyClicks(ce.prompts_edit, "a fox with a lantern")
    assert w.session.character("fox").anchor_prompts == ("a fox with a lantern",)
    assert ce.anchors.count() == 1 and "lantern" in ce.anchors.item(0).toolTip()
    assert "cannot be read" not in ce.sheet_info.text() and "No anchors yet" in ce.sheet_info.text()
    ce.anchors.setCurrentRow(0)
    qtbot.mouseClick(ce.reroll_button, Qt.MouseButton.LeftButton)  # indexes the sheet's one anchor
    ce.prompts_edit.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClick(ce.prompts_edit, Qt.Key.Key_Return)
    qtbot.keyClicks(ce.prompts_edit, "a fox asleep")
    assert w.session.character("fox").anchor_prompts == ("a fox with a lantern", "a fox asleep")
    assert ce.anchors.count() == 2
    ce.anchors.item(0).setCheckState(Qt.CheckState.Unchecked)
    qtbot.mouseClick(ce.pick_button, Qt.MouseButton.LeftButton)
    assert w.session.character("fox").anchor_prompts == ("a fox asleep",)
    ce.prompts_edit.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(ce.prompts_edit, " by a fire")  # the field still edits the character after "Keep only checked"
    assert w.session.character("fox").anchor_prompts == ("a fox asleep by a fire",)


def _slot_centre(view, item) -> QPoint:
    return view.mapFromScene(item.sceneBoundingRect().center())


def test_a_drag_inside_a_slot_pans_its_picture_as_one_undo_step(qtbot, window):
    w = window
    w.session.select("page", "pg1")
    pe = w.page_editor
    slot = pe.slot_items[0]
    start = _slot_centre(pe.view, slot)
    steps_before = w.undo_stack.count()
    qtbot.mousePress(pe.view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for dx in (10, 20, 30, 40):
        qtbot.mouseMove(pe.view.viewport(), start + QPoint(dx, 0))
    qtbot.mouseRelease(pe.view.viewport(), Qt.MouseButton.LeftButton, pos=start + QPoint(40, 0))
    assert pe.slot_items[0] is slot  # the item handling the drag was not rebuilt under the mouse
    focus = w.session.page("pg1").slots[0].focus_x
    expected = 0.5 - (pe.view.mapToScene(start + QPoint(40, 0)).x() - pe.view.mapToScene(start).x()) \
        / slot.rect().width()
    assert focus == pytest.approx(expected, abs=1e-6) and focus < 0.45  # every move counted, not just the first
    assert w.undo_stack.count() == steps_before + 1
    w.undo_stack.undo()
    assert w.session.page("pg1").slots[0].focus_x == 0.5


def test_delete_with_a_balloon_selected_removes_the_balloon_not_the_page(qtbot, window):
    w = window
    w.session.select("page", "pg1")
    pe = w.page_editor
    balloon = pe.balloon_items["b1"]
    qtbot.mouseClick(pe.view.viewport(), Qt.MouseButton.LeftButton, pos=_slot_centre(pe.view, balloon))
    assert pe.selected_balloon == "b1" and pe.view.hasFocus()
    qtbot.keyClick(pe.view, Qt.Key.Key_Delete)
    assert w.session.page("pg1") is not None and w.session.page("pg1").balloons == ()
    assert w.session.selection == ("page", "pg1")
    qtbot.keyClick(pe.view, Qt.Key.Key_Delete)  # nothing selected on the page now: the window's Delete acts
    assert w.session.page("pg1") is None


def test_open_recent_asks_before_dropping_unsaved_edits(qtbot, window, tmp_path, answer_next_question):
    w = window
    other = tmp_path / "other"
    other.mkdir()
    save_project(Project(title="Other", book=BookSettings(title="Other")), other)
    w.session.select("panel", "p1")
    w.panel_editor.text_edit.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(w.panel_editor.text_edit, " at night")
    seen: list[str] = []
    answer_next_question(QMessageBox.StandardButton.Cancel, seen)
    w.files.open_recent(other)
    assert seen == ["Save the changes to “Safe”?"]
    assert w.session.project.title == "Safe" and w.session.panel("p1").text.endswith(" at night")
    answer_next_question(QMessageBox.StandardButton.Save, seen)
    w.files.open_recent(other)
    assert w.session.project.title == "Other"
    assert open_project(tmp_path / "book", allow_missing=True).panel("p1").text.endswith(" at night")


def test_save_as_refuses_a_folder_that_is_not_empty(qtbot, window, tmp_path, monkeypatch):
    w = window
    other = tmp_path / "other"
    other.mkdir()
    save_project(Project(title="Other", book=BookSettings(title="Other")), other)
    before = (other / PROJECT_FILE).read_bytes()
    chosen = iter([str(other), str(tmp_path / "book"), str(tmp_path / "empty")])
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: next(chosen)))
    assert not w.files.save_as()
    assert "is not empty" in w.last_message and (other / PROJECT_FILE).read_bytes() == before
    assert not w.files.save_as()
    assert "this project's own folder" in w.last_message
    (tmp_path / "empty").mkdir()
    (tmp_path / "book" / "characters").mkdir()
    (tmp_path / "book" / "characters" / "fox.character").write_bytes(b"the fox's identity")
    assert w.files.save_as()
    assert w.session.folder == tmp_path / "empty" and open_project(tmp_path / "empty").title == "Safe"
    assert (tmp_path / "empty" / "characters" / "fox.character").read_bytes() == b"the fox's identity"


def test_new_project_dialog_refuses_a_file_or_a_full_folder_in_one_sentence(qtbot, tmp_path):
    (tmp_path / "taken").write_text("a file")
    dialog = NewProjectDialog(tmp_path)
    qtbot.addWidget(dialog)
    dialog.title_edit.setText("Taken")
    dialog.accept()
    assert dialog.error_label.text() == f"{tmp_path / 'taken'} is a file, not a folder. Choose another title or " \
                                        "folder." and dialog.result() != NewProjectDialog.DialogCode.Accepted
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    dialog.title_edit.setText("Full")
    dialog.accept()
    assert "full is not empty" in dialog.error_label.text()
    dialog.title_edit.setText("Fresh")
    dialog.accept()
    assert dialog.result() == NewProjectDialog.DialogCode.Accepted and dialog.folder() == tmp_path / "fresh"


def test_a_page_file_with_one_fill_for_four_slots_can_fill_and_frame_the_others(qtbot, window_on, tmp_path):
    project = _project()
    project = project.with_page(dataclasses.replace(project.page("pg1"), slots=(SlotFill(panel_id="p1"),)))
    w = window_on(project)
    w.session.select("page", "pg1")
    pe = w.page_editor
    assert len(pe.slot_items) == 4 and len(w.session.page("pg1").slots) == 4
    pe.place_panel(2, "p1")
    pe._zoom_by(3, 2.0)  # an empty slot: nothing to frame, no error
    pe._pan(2, 0.1, 0.0)
    assert w.session.page("pg1").slots[2].panel_id == "p1" and w.session.page("pg1").slots[2].focus_x == 0.6


def test_a_page_with_an_unknown_layout_says_so_and_takes_a_new_one(qtbot, window_on):
    project = _project()
    project = project.with_page(dataclasses.replace(project.page("pg1"), layout="from-a-newer-version"))
    w = window_on(project)
    w.session.select("page", "pg1")
    pe = w.page_editor
    assert "Unknown page layout 'from-a-newer-version'" in w.last_message
    assert pe.slot_items == [] and pe.layout_combo.currentIndex() == -1
    pe.layout_combo.setCurrentIndex(pe.layout_combo.findData("strip-3"))
    pe._layout_chosen(pe.layout_combo.currentIndex())
    assert w.session.page("pg1").layout == "strip-3" and len(pe.slot_items) == 3
    assert w.session.page("pg1").slots[0].panel_id == "p1"


def test_cancelling_the_open_or_new_dialog_stops_no_job_and_asks_nothing(qtbot, window, monkeypatch):
    w = window
    folder = w.session.folder
    w.session.select("panel", "p1")
    qtbot.keyClicks(w.panel_editor.text_edit, "!")  # unsaved edits
    monkeypatch.setattr(w.generation, "busy", lambda: True)  # pictures being drawn
    cancelled: list[bool] = []
    monkeypatch.setattr(w.generation.queue, "cancel_now", lambda: cancelled.append(True))
    asked: list[str] = []
    monkeypatch.setattr(w.files, "_ask", lambda title, text: asked.append(title) or True)
    monkeypatch.setattr(w.files, "maybe_save", lambda: asked.append("save") or True)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: ""))
    w.files.open_dialog()
    monkeypatch.setattr(NewProjectDialog, "exec", lambda self: NewProjectDialog.DialogCode.Rejected)
    w.files.new_project()
    assert asked == [] and cancelled == [] and w.session.modified and w.session.folder == folder
