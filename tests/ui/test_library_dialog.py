"""The character library dialog keeps the library: add, move to the trash (unreadable files too), restore, empty
the trash after asking; a refusal is one sentence in the dialog and nothing else changes."""

from __future__ import annotations

import torch
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.character_library import CharacterLibrary
from engine.identity import Identity, write_identity
from ui.library_dialog import LibraryDialog


def _add(lib: CharacterLibrary, tmp_path, name: str, colour: str):
    identity = Identity(name=name, description=f"a {colour} fox", subjects=("fox",),
                        anchor_prompts=("a fox", "a fox running"), anchor_seeds=(1, 2), config={},
                        scheduler="ddim", steps=2, width=64, height=64, guidance=5.0,
                        model={"fingerprint": "fp", "source": "tiny", "family": "sdxl"}, versions={},
                        anchor_images=(Image.new("RGB", (64, 64), colour),) * 2,
                        noise=torch.zeros(2, 4, 8, 8))
    return lib.import_file(write_identity(identity, tmp_path / f"{name}.character"))


def _click(qtbot, button):
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _select(dialog, *ids):
    dialog.list.clearSelection()
    for row, entry_id in enumerate(dialog.entry_ids()):
        dialog.list.item(row).setSelected(entry_id in ids)


def test_move_to_trash_restore_and_empty_the_trash_by_clicks(qtbot, tmp_path, monkeypatch):
    lib = CharacterLibrary()
    mira, bo = _add(lib, tmp_path, "Mira", "red"), _add(lib, tmp_path, "Bo", "blue")
    (lib.folder / "broken.character").write_bytes(b"not a zip")
    dialog = LibraryDialog(lib)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.entry_ids() == [bo.id, "broken", mira.id] and not dialog.restore_button.isVisible()

    _select(dialog, "broken")  # an unreadable file can be selected, to be trashed, but never added
    assert dialog.chosen_ids() == [] and not dialog.add_button.isEnabled() and dialog.trash_button.isEnabled()
    _select(dialog, "broken", mira.id)
    _click(qtbot, dialog.trash_button)
    assert dialog.entry_ids() == [bo.id] and [e.id for e in lib.list()] == [bo.id]
    assert sorted(e.id for e in lib.trash()) == sorted(["broken", mira.id])
    assert dialog.message_label.text() == "Moved to the trash: “broken”, “Mira”."

    _click(qtbot, dialog.trash_toggle)
    assert dialog.showing_trash and dialog.entry_ids() == ["broken", mira.id]
    assert not dialog.add_button.isVisible() and not dialog.trash_button.isVisible()
    assert not dialog.restore_button.isEnabled() and dialog.empty_button.isEnabled()
    _select(dialog, mira.id)
    assert dialog.chosen_ids() == []  # nothing is added from the trash
    _click(qtbot, dialog.restore_button)
    assert dialog.entry_ids() == ["broken"] and [e.id for e in lib.list()] == [bo.id, mira.id]
    assert lib.entry(mira.id).path.read_bytes() == mira.path.read_bytes()  # the very file, back
    assert dialog.message_label.text() == "Restored to the library: “Mira”."

    asked = []
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No))
    _click(qtbot, dialog.empty_button)
    assert asked == ["Delete the 1 character in the trash for good? This cannot be undone."]
    assert [e.id for e in lib.trash()] == ["broken"]  # "No" keeps it
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes))
    _click(qtbot, dialog.empty_button)
    assert lib.trash() == [] and dialog.entry_ids() == [] and dialog.empty_label.isVisible()
    assert dialog.message_label.text() == "Deleted 1 character for good." and not dialog.empty_button.isEnabled()

    _click(qtbot, dialog.trash_toggle)
    assert not dialog.showing_trash and dialog.entry_ids() == [bo.id, mira.id]
    _select(dialog, mira.id)
    _click(qtbot, dialog.add_button)
    assert dialog.result() == LibraryDialog.DialogCode.Accepted and dialog.chosen_ids() == [mira.id]


def test_a_refused_move_says_why_and_changes_nothing_else(qtbot, tmp_path):
    lib = CharacterLibrary()
    mira, bo = _add(lib, tmp_path, "Mira", "red"), _add(lib, tmp_path, "Bo", "blue")
    dialog = LibraryDialog(lib)
    qtbot.addWidget(dialog)
    dialog.show()
    _select(dialog, bo.id, mira.id)
    bo.path.unlink()  # gone behind the dialog's back (another window, the command line)
    _click(qtbot, dialog.trash_button)
    text = dialog.message_label.text()
    assert text.startswith("“Bo”: ") and bo.id in text and "color: #b00020" in dialog.message_label.styleSheet()
    assert dialog.entry_ids() == [mira.id] and [e.id for e in lib.list()] == [mira.id] and lib.trash() == []
