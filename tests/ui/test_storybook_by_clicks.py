"""End to end, by simulated clicks and typing only: new project → character + anchors (tiny engine, real worker
thread) → two panels generated → placed on a page → balloon → undo/redo → PDF export, checked on disk."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialogButtonBox, QToolBar

from app.anchor_jobs import read_sheet
from app.assets import read_sidecar
from app.character_library import CharacterLibrary
from app.project_store import open_project
from app.settings import Settings
from ui.main_window import MainWindow

JOB_TIMEOUT_MS = 120_000


def click_action(qtbot, window, action) -> None:
    """Click the toolbar button of ``action``."""
    toolbar = window.findChild(QToolBar, "main_toolbar")
    button = toolbar.widgetForAction(action)
    assert button is not None and button.isEnabled(), action.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def type_into(qtbot, widget, text: str) -> None:
    """Click into a text field, select all (Ctrl+A), delete, type."""
    qtbot.mouseClick(widget.viewport() if hasattr(widget, "viewport") else widget, Qt.MouseButton.LeftButton)
    qtbot.keyClick(widget, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(widget, Qt.Key.Key_Delete)
    qtbot.keyClicks(widget, text)


def click_ok(qtbot, dialog) -> None:
    box = dialog.findChild(QDialogButtonBox)
    qtbot.mouseClick(box.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)


def click_item(qtbot, lst, row: int) -> None:
    rect = lst.visualItemRect(lst.item(row))
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


@pytest.fixture
def window(qtbot, tmp_path):
    settings = Settings(tmp_path / "settings.ini")
    settings.model_source, settings.steps, settings.max_size, settings.max_batch = "tiny", 2, 64, 4
    settings.first_run_done = True
    win = MainWindow(settings)
    win.show()
    win.activateWindow()
    qtbot.waitActive(win)
    yield win
    win.confirm_close_without_asking()
    assert not win.generation.queue.is_running()


def pdf_text(path: Path) -> str:
    if shutil.which("pdftotext"):
        return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    pytest.skip("pdftotext (poppler-utils) is needed to read the PDF's text")


def test_whole_storybook_by_clicks(qtbot, window, tmp_path, in_modal):
    w = window
    # 1. New project (Ctrl+N's toolbar button), typed into the dialog.
    def fill_new(dialog):
        type_into(qtbot, dialog.title_edit, "Fox Book")
        type_into(qtbot, dialog.parent_edit, str(tmp_path))
        click_ok(qtbot, dialog)
    in_modal(fill_new)
    click_action(qtbot, w, w.new_action)
    folder = tmp_path / "fox-book"
    assert w.session.folder == folder and (folder / "project.json").is_file()
    assert w.windowTitle().startswith("Fox Book")

    # 2. A character, typed; its anchors generated through the real worker thread.
    qtbot.mouseClick(w.browser.sections["character"].add_button, Qt.MouseButton.LeftButton)
    ce = w.character_editor
    assert w.editors.currentWidget() is ce, w.last_message
    type_into(qtbot, ce.name_edit, "Pip")
    type_into(qtbot, ce.description_edit, "a small red fox with a blue scarf")
    type_into(qtbot, ce.subjects_edit, "fox")
    character = w.session.project.characters[0]
    assert (character.name, character.subjects) == ("Pip", ("fox",))
    assert character.anchor_prompts[0] == "a small red fox with a blue scarf"
    with qtbot.waitSignal(w.generation.anchors_ready, timeout=JOB_TIMEOUT_MS):
        qtbot.mouseClick(ce.generate_button, Qt.MouseButton.LeftButton)
    character = w.session.project.characters[0]
    assert character.identity_file and (folder / character.identity_file).is_file()  # copied into the project
    sheet = read_sheet(folder, character.identity_file)
    assert sheet.anchor_seeds == character.anchor_seeds and len(sheet.anchor_pngs) == 2
    assert sheet.model_source == "tiny" and (sheet.width, sheet.height, sheet.steps) == (64, 64, 2)
    assert [e.name for e in CharacterLibrary().list()] == ["Pip"]  # and the library has it
    assert ce.anchors.count() == 2 and not ce.anchors.item(0).icon().isNull()
    assert "made with “tiny”" in ce.sheet_info.text() and ce.model_banner.isHidden()

    # 3. Two panels with text; the character ticked with the keyboard; each generated.
    for text in ("the fox reads a map under a tree", "the fox sails a paper boat"):
        qtbot.mouseClick(w.browser.sections["panel"].add_button, Qt.MouseButton.LeftButton)
        pe = w.panel_editor
        assert w.editors.currentWidget() is pe
        type_into(qtbot, pe.text_edit, text)
        click_item(qtbot, pe.characters_list, 0)
        qtbot.keyClick(pe.characters_list, Qt.Key.Key_Space)
        assert w.session.panel(pe.panel_id).character_ids == (character.id,)
        assert not pe.warning.isVisible()
        with qtbot.waitSignal(w.generation.queue.job_finished, timeout=JOB_TIMEOUT_MS) as done:
            qtbot.mouseClick(pe.generate_button, Qt.MouseButton.LeftButton)
        panel = w.session.panel(pe.panel_id)
        assert panel.current == done.args[1][0] and (folder / "assets" / f"{panel.current}.png").is_file()
        assert pe.gallery.count() == 1
        side = read_sidecar(folder, panel.current)
        assert side["job_kind"] == "identity" and side["identity_files"] == [character.identity_file]
        assert (folder / "assets" / f"{side['mask_asset']}.png").is_file()  # the mask overlay's picture
        plain = pe.image_label.pixmap().toImage()
        qtbot.mouseClick(pe.mask_toggle, Qt.MouseButton.LeftButton, pos=QPoint(6, pe.mask_toggle.height() // 2))
        assert pe.mask_toggle.isChecked() and "Pip (fox)" in pe.mask_legend.text()
        assert pe.image_label.pixmap().toImage() != plain  # tinted where the engine saw the fox
        qtbot.mouseClick(pe.mask_toggle, Qt.MouseButton.LeftButton, pos=QPoint(6, pe.mask_toggle.height() // 2))
        assert pe.image_label.pixmap().toImage() == plain
    panels = w.session.project.panels
    assert [p.text for p in panels] == ["the fox reads a map under a tree", "the fox sails a paper boat"]

    # 4. A page; both panels placed by clicking a slot and choosing the panel with the keyboard.
    qtbot.mouseClick(w.browser.sections["page"].add_button, Qt.MouseButton.LeftButton)
    ge = w.page_editor
    assert w.editors.currentWidget() is ge
    for slot, downs in ((0, 1), (1, 2)):
        item = ge.slot_items[slot]
        pos = ge.view.mapFromScene(item.rect().center())
        qtbot.mouseClick(ge.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
        assert ge.selected_slot == slot
        ge.slot_panel_combo.setFocus()
        for _ in range(downs):
            qtbot.keyClick(ge.slot_panel_combo, Qt.Key.Key_Down)
    page = w.session.project.pages[0]
    assert [s.panel_id for s in page.slots[:2]] == [panels[0].id, panels[1].id]

    # 5. A speech balloon with typed words.
    qtbot.mouseClick(ge.add_buttons["speech"], Qt.MouseButton.LeftButton)
    qtbot.keyClicks(ge.balloon_text, "Look, a map!")
    assert w.session.project.pages[0].balloons, w.last_message
    balloon = w.session.project.pages[0].balloons[0]
    assert (balloon.kind, balloon.text) == ("speech", "Look, a map!")

    # 6. Undo the typing (one step), redo it.
    click_action(qtbot, w, w.undo_action)
    assert w.session.project.pages[0].balloons[0].text == ""
    click_action(qtbot, w, w.redo_action)
    assert w.session.project.pages[0].balloons[0].text == "Look, a map!"
    assert ge.balloon_text.toPlainText() == "Look, a map!"

    # 7. Save and export a PDF through the export dialog.
    click_action(qtbot, w, w.save_action)
    assert not w.session.modified and not w.windowTitle().startswith("Fox Book*")
    saved = open_project(folder)
    assert saved.pages[0].balloons[0].text == "Look, a map!"
    assert [p.current for p in saved.panels] == [p.current for p in w.session.project.panels]
    out = tmp_path / "out" / "fox.pdf"

    def fill_export(dialog):
        type_into(qtbot, dialog.path_edit, str(out))
        click_ok(qtbot, dialog)
    in_modal(fill_export)
    click_action(qtbot, w, w.export_action)
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 1
    assert w.files.last_export.pages_written == 1
    assert "Look, a map!" in " ".join(pdf_text(out).split())  # the balloon wraps its words
