"""What an editor shows when the project changes under it (a finished job, an undo, another selection): the user's
cursor and chosen picture stay, a refused edit's reason does not follow to another character, a panel without a
picture shows no mask legend, and the likeness slider shows the value the job will use."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.app_session import ProjectChange
from app.assets import write_image_asset
from app.project_model import BookSettings, Character, Panel, Project, default_anchor_prompts


def _project() -> Project:
    fox = Character(id="fox", name="Mira", description="a small red fox", subjects=("fox",),
                    anchor_prompts=default_anchor_prompts("a small red fox"), anchor_seeds=(1, 2), dropout=0.8)
    bear = Character(id="bear", name="Bo", description="a brown bear", subjects=("bear",),
                     anchor_prompts=default_anchor_prompts("a brown bear"), anchor_seeds=(3, 4), dropout=0.2)
    return Project(title="R", book=BookSettings(title="R"), characters=(fox, bear),
                   panels=(Panel(id="p1", text="the fox and the bear", character_ids=("fox", "bear"),
                                 style="ink", negative_prompt="blurry"),
                           Panel(id="p2", text="a lake")))


@pytest.fixture
def window(window_on):
    return window_on(_project())


def _picture_arrives(w, panel_id: str, shade: int) -> str:
    """What a finished job does: an asset added to the panel outside the undo stack."""
    from app.commands import AddAlternates

    asset = write_image_asset(w.session.folder, Image.new("RGB", (64, 64), (shade, 90, 40)), {})
    w.session.apply(AddAlternates(panel_id, [asset]).do(w.session.project),
                    ProjectChange.of("panel", panel_id, initiator=w.generation))
    return asset


def test_a_picture_arriving_keeps_the_cursor_and_the_chosen_alternate(qtbot, window):
    w = window
    w.session.select("panel", "p1")
    pe = w.panel_editor
    first = _picture_arrives(w, "p1", 10)
    second = _picture_arrives(w, "p1", 20)
    pe.gallery.setCurrentRow(0)
    assert pe.gallery.currentItem().data(Qt.ItemDataRole.UserRole) == first
    pe.style_edit.setFocus()
    pe.style_edit.setCursorPosition(1)
    _picture_arrives(w, "p1", 30)  # a third variation finishes while the user works
    assert pe.style_edit.cursorPosition() == 1
    qtbot.keyClicks(pe.style_edit, "X")
    assert w.session.panel("p1").style == "iXnk"
    assert pe.gallery.currentItem().data(Qt.ItemDataRole.UserRole) == first and pe.gallery.currentItem().isSelected()
    qtbot.mouseClick(pe.use_button, Qt.MouseButton.LeftButton)
    assert w.session.panel("p1").current == first and second in w.session.panel("p1").alternates


def test_the_likeness_slider_shows_the_dropout_the_job_uses(window):
    w = window
    w.session.select("panel", "p1")
    assert w.panel_editor.dropout_slider.value() == 20  # the lower of 0.8 and 0.2, as job_plan uses


def test_a_refused_edits_reason_does_not_follow_to_another_character_or_an_undo(qtbot, window):
    w = window
    w.session.select("character", "fox")
    ce = w.character_editor
    ce.subjects_edit.selectAll()
    qtbot.keyClicks(ce.subjects_edit, "cat")
    assert ce.problem_label.isVisibleTo(w) and w.session.character("fox").subjects == ("fox",)
    w.session.select("character", "bear")
    assert ce.problem_label.isHidden() and ce.subjects_edit.text() == "bear"
    w.session.select("character", "fox")
    assert ce.problem_label.isHidden() and ce.subjects_edit.text() == "fox"


def test_a_panel_without_a_picture_shows_no_mask_legend(qtbot, window):
    w = window
    w.session.select("panel", "p1")
    pe = w.panel_editor
    _picture_arrives(w, "p1", 10)
    pe.mask_toggle.setChecked(True)
    assert pe.mask_legend.isVisibleTo(w)
    w.session.select("panel", "p2")
    assert pe.mask_legend.isHidden()
