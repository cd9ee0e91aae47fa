"""The character editor makes real identities through the worker thread (tiny engine, 64x64, 2 steps): generate,
re-roll one anchor, keep only the checked ones, re-create on another model; and the library actions (save, add
from the library dialog, export, import) work by clicks, with one clear sentence when they cannot."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QFileDialog

from app.anchor_jobs import read_sheet
from app.character_library import CharacterLibrary
from app.project_model import BookSettings, Character, Project

TIMEOUT_MS = 120_000


@pytest.fixture
def window(window_on):
    pip = Character(id="pip", name="Pip", description="a small red fox", subjects=("fox",),
                    anchor_prompts=("a small red fox", "a small red fox standing", "a small red fox sitting"),
                    anchor_seeds=(1, 2, 3))
    win = window_on(Project(title="Lib", book=BookSettings(title="Lib"), characters=(pip,)))
    win.session.select("character", "pip")
    yield win
    win.confirm_close_without_asking()
    assert not win.generation.queue.is_running()


def generate(qtbot, w, button) -> None:
    with qtbot.waitSignal(w.generation.anchors_ready, timeout=TIMEOUT_MS):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_anchors_reroll_pick_and_recreate_on_another_model(qtbot, window):
    w, ce = window, window.character_editor
    folder = w.session.folder
    assert ce.anchors.count() == 3 and "No anchors yet" in ce.sheet_info.text()
    assert not ce.library_buttons["save"].isEnabled()  # nothing to save before the anchors exist
    generate(qtbot, w, ce.generate_button)
    pip = w.session.character("pip")
    first_file = pip.identity_file
    first = read_sheet(folder, first_file)
    assert first.anchor_seeds == (1, 2, 3) and len(first.anchor_pngs) == 3
    assert pip.identity_file.startswith("characters/") and ce.library_buttons["save"].isEnabled()

    # Re-roll anchor 2: a new seed for it only, the identity made again.
    ce.anchors.setCurrentRow(1)
    generate(qtbot, w, ce.reroll_button)
    pip = w.session.character("pip")
    assert pip.anchor_seeds[0] == 1 and pip.anchor_seeds[2] == 3 and pip.anchor_seeds[1] != 2
    second_file = pip.identity_file
    second = read_sheet(folder, second_file)
    assert second.anchor_seeds == pip.anchor_seeds and second_file != first_file
    assert second.anchor_pngs[1] != first.anchor_pngs[1]

    # Keep anchors 1 and 3: the identity holds exactly those.
    ce.anchors.item(1).setCheckState(Qt.CheckState.Unchecked)
    generate(qtbot, w, ce.pick_button)
    pip = w.session.character("pip")
    third = read_sheet(folder, pip.identity_file)
    assert pip.anchor_seeds == (1, 3) and third.anchor_seeds == (1, 3) and len(third.anchor_pngs) == 2
    assert third.anchor_prompts == ("a small red fox", "a small red fox sitting") and ce.anchors.count() == 2

    # Undo (the new identity, then the pick) goes back to the re-rolled character and its identity.
    w.undo_stack.undo()
    w.undo_stack.undo()
    pip = w.session.character("pip")
    assert len(pip.anchor_seeds) == 3 and pip.identity_file == second_file and ce.anchors.count() == 3
    w.undo_stack.redo()
    w.undo_stack.redo()
    assert w.session.character("pip").anchor_seeds == (1, 3)
    # Switching the model: the editor says so and offers to re-create the anchors there.
    w.settings.model_source = "tiny-sd15"
    w.generation.apply_model_settings()
    ce.refresh_anchors()
    assert not ce.model_banner.isHidden()
    assert "made with the model “tiny”" in ce.model_label.text() and "“tiny-sd15”" in ce.model_label.text()
    generate(qtbot, w, ce.recreate_button)
    pip = w.session.character("pip")
    assert read_sheet(folder, pip.identity_file).model_source == "tiny-sd15" and ce.model_banner.isHidden()


def test_library_save_add_export_import_by_clicks(qtbot, window, tmp_path, monkeypatch, in_modal):
    w, ce = window, window.character_editor
    folder = w.session.folder
    # Without anchors: save and export say what to do; the library stays empty.
    w.files.library_action("save", "pip")
    assert "has no anchors yet" in w.last_message and CharacterLibrary().list() == []
    # The empty library's dialog says so, and "Add" is disabled.

    def check_empty(dialog):
        assert dialog.objectName() == "library_dialog" and dialog.empty_label.isVisibleTo(dialog)
        assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
        dialog.reject()
    in_modal(check_empty)
    qtbot.mouseClick(ce.library_buttons["add"], Qt.MouseButton.LeftButton)

    generate(qtbot, w, ce.generate_button)
    pip = w.session.character("pip")
    entries = CharacterLibrary().list()
    assert [e.name for e in entries] == ["Pip"] and entries[0].thumbnail_png
    qtbot.mouseClick(ce.library_buttons["save"], Qt.MouseButton.LeftButton)  # already there: the same entry
    assert [e.id for e in CharacterLibrary().list()] == [entries[0].id] and "is in your character" in w.last_message

    # Export through the (patched) save dialog: the very bytes of the project's identity file.
    out = tmp_path / "exported"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    qtbot.mouseClick(ce.library_buttons["export"], Qt.MouseButton.LeftButton)
    exported = tmp_path / "exported.character"
    assert exported.read_bytes() == (folder / pip.identity_file).read_bytes()

    # Add from library: the dialog lists Pip with a thumbnail; adding makes a second character with the identity.
    def choose_first(dialog):
        assert dialog.list.count() == 1 and not dialog.list.item(0).icon().isNull()
        dialog.list.item(0).setSelected(True)
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    in_modal(choose_first)
    qtbot.mouseClick(ce.library_buttons["add"], Qt.MouseButton.LeftButton)
    added = w.session.project.characters[-1]
    assert len(w.session.project.characters) == 2 and added.id != "pip" and w.session.selection[1] == added.id
    assert (added.name, added.subjects, added.anchor_seeds) == ("Pip", ("fox",), pip.anchor_seeds)
    assert (folder / added.identity_file).read_bytes() == exported.read_bytes()
    w.undo_stack.undo()
    assert len(w.session.project.characters) == 1  # one undoable edit

    # Import: a damaged file is refused in one sentence; a good one lands in the library and the project.
    bad = tmp_path / "bad.character"
    bad.write_bytes(b"not a zip")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(bad), "")))
    qtbot.mouseClick(ce.library_buttons["import"], Qt.MouseButton.LeftButton)
    assert "bad.character cannot be imported" in w.last_message and len(w.session.project.characters) == 1
    CharacterLibrary().delete(entries[0].id)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(exported), "")))
    qtbot.mouseClick(ce.library_buttons["import"], Qt.MouseButton.LeftButton)
    assert [e.name for e in CharacterLibrary().list()] == ["Pip"]
    assert len(w.session.project.characters) == 2 and w.session.project.characters[-1].identity_file


def test_a_reroll_overtaken_by_a_later_one_warns_nothing(window):
    """Re-roll anchor 1, then anchor 2 before the first ends: the first job's anchors are stale, but the second job
    is queued and brings the identity, so no box tells the user to press "Generate anchors" again."""
    from dataclasses import replace

    from app.anchor_jobs import CharacterJob

    w, gen = window, window.generation
    then = w.session.project.with_character(replace(w.session.character("pip"), anchor_seeds=(1, 9, 3)))
    first = CharacterJob("job-a", "pip", then, (64, 64), 2)
    errors: list[str] = []
    gen.error.connect(errors.append)
    gen._jobs["job-b"] = (CharacterJob("job-b", "pip", w.session.project, (64, 64), 2), w.session.folder)
    gen._identity_made(first, "characters/x.character")
    assert errors == [] and w.session.character("pip").identity_file is None
    del gen._jobs["job-b"]
    gen._identity_made(first, "characters/x.character")  # nothing else will come: now it says so
    assert len(errors) == 1 and "was changed while its anchors were drawn" in errors[0]
    assert w.session.character("pip").identity_file is None
