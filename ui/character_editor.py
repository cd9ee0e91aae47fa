"""Character editor: name, description, subject word(s), anchor prompts; generate the anchors (the character's
identity, made on the worker thread), re-roll one, pick the ones that define the character, see them side by side
as a character sheet (read from the identity file); the likeness default (dropout); library and ``.character``
file actions (``library_action_requested``).

Every change goes through ``push_command`` (undoable). Changing what the anchors are drawn from (subject words,
anchor prompts, seeds) drops the character's identity in the same undo step, since it no longer shows the
character. An identity made with another model than the current one (``current_model``) shows a notice with
"Re-create anchors on this model". Generation leaves as ``generate_anchors_requested``.
"""

from __future__ import annotations

import random
from typing import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QUndoStack
from PySide6.QtWidgets import (QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPlainTextEdit, QPushButton, QSlider, QVBoxLayout, QWidget)

from app.anchor_jobs import read_sheet, sheet_matches
from app.app_session import AppSession, ProjectChange
from app.commands import EditCharacter
from app.project_model import MAX_CHARACTER_NAME, default_anchor_prompts
from ui.image_cache import ImageCache, placeholder_pixmap
from ui.project_undo import push_command

__all__ = ["CharacterEditor", "parse_subjects"]


def parse_subjects(text: str) -> tuple[str, ...]:
    """Subject words typed as "fox, hat" or "fox hat" → ("fox", "hat"); order kept, no duplicates."""
    return tuple(dict.fromkeys(text.replace(",", " ").split()))


class CharacterEditor(QWidget):
    generate_anchors_requested = Signal(str)          # character id
    library_action_requested = Signal(str, str)      # action ("save", "add", "export", "import"), character id
    edit_refused = Signal(str)                        # one sentence: why an edit was not applied

    def __init__(self, session: AppSession, stack: QUndoStack, images: ImageCache,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("character_editor")
        self._session, self._stack, self._images = session, stack, images
        self._character_id = ""
        self._shown_sheet: tuple | None = None  # (identity file, prompts, seeds) the sheet shows
        self._loading = False
        self.current_model: Callable[[], str | None] = lambda: None  # the model source jobs use now

        self.heading = QLabel()
        self.heading.setStyleSheet("font-size: 16px; font-weight: bold;")
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("character_name")
        self.name_edit.setPlaceholderText("e.g. Pip")
        self.name_edit.setMaxLength(MAX_CHARACTER_NAME)
        self.description_edit = QPlainTextEdit()
        self.description_edit.setObjectName("character_description")
        self.description_edit.setPlaceholderText("How the character looks, e.g. “a small red fox with a blue scarf”")
        self.description_edit.setMaximumHeight(70)
        self.subjects_edit = QLineEdit()
        self.subjects_edit.setObjectName("character_subjects")
        self.subjects_edit.setPlaceholderText("the word panels use for this character, e.g. fox")
        self.subjects_edit.setToolTip("Every panel text that shows this character should contain this word.")
        self.prompts_edit = QPlainTextEdit()
        self.prompts_edit.setObjectName("character_anchor_prompts")
        self.prompts_edit.setPlaceholderText("One anchor prompt per line (empty: made from the description).")
        self.prompts_edit.setMaximumHeight(70)
        self.dropout_slider = QSlider(Qt.Orientation.Horizontal)
        self.dropout_slider.setRange(0, 99)  # the project keeps 0-0.99: dropout 1 would drop every shared patch
        self.dropout_slider.setToolTip("Default for this character's panels: left keeps it closer to the anchors, "
                                       "right gives more freedom of pose.")
        dropout_row = QHBoxLayout()
        dropout_row.addWidget(QLabel("Likeness"))
        dropout_row.addWidget(self.dropout_slider, 1)
        dropout_row.addWidget(QLabel("Pose variety"))

        form = QFormLayout()
        form.addRow("Name:", self.name_edit)
        form.addRow("Looks:", self.description_edit)
        form.addRow("Subject word(s):", self.subjects_edit)
        form.addRow("Anchor prompts:", self.prompts_edit)
        form.addRow("Consistency:", dropout_row)
        self.problem_label = QLabel()
        self.problem_label.setObjectName("character_problem")
        self.problem_label.setStyleSheet("color: #a05a00;")
        self.problem_label.setWordWrap(True)
        self.problem_label.hide()
        form.addRow("", self.problem_label)

        self.generate_button = QPushButton("Generate anchors")
        self.generate_button.setObjectName("character_generate")
        self.generate_button.setToolTip("Draw the anchor pictures that define how this character looks.")
        self.reroll_button = QPushButton("Re-roll selected")
        self.reroll_button.setObjectName("character_reroll")
        self.reroll_button.setToolTip("Give the selected anchor a new seed and draw the anchors again.")
        self.pick_button = QPushButton("Keep only checked")
        self.pick_button.setObjectName("character_keep_checked")
        self.pick_button.setToolTip("The checked anchors define the character; unchecked ones are dropped and the "
                                    "kept ones are drawn again together (anchors shape each other, so they may "
                                    "change a little).")
        actions = QHBoxLayout()
        for b in (self.generate_button, self.reroll_button, self.pick_button):
            actions.addWidget(b)
        actions.addStretch(1)

        self.anchors = QListWidget()
        self.anchors.setObjectName("character_anchors")
        self.anchors.setViewMode(QListWidget.ViewMode.IconMode)
        self.anchors.setIconSize(QSize(160, 160))
        self.anchors.setFlow(QListWidget.Flow.LeftToRight)
        self.anchors.setWrapping(False)
        self.anchors.setMinimumHeight(200)
        self.anchors.setSpacing(6)
        self.anchors.setWordWrap(True)
        self.anchors.setGridSize(QSize(190, 230))
        self.anchors.setMovement(QListWidget.Movement.Static)
        self.sheet_info = QLabel()
        self.sheet_info.setObjectName("character_sheet_info")
        self.sheet_info.setWordWrap(True)

        self.model_banner = QFrame()
        self.model_banner.setObjectName("character_model_banner")
        self.model_banner.setStyleSheet("QFrame#character_model_banner { background: #fff3d6; "
                                        "border: 1px solid #e0b050; border-radius: 4px; }")
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.recreate_button = QPushButton("Re-create anchors on this model")
        self.recreate_button.setObjectName("character_recreate")
        banner = QHBoxLayout(self.model_banner)
        banner.addWidget(self.model_label, 1)
        banner.addWidget(self.recreate_button)
        self.model_banner.hide()

        self.library_buttons: dict[str, QPushButton] = {}
        library_row = QHBoxLayout()
        for action, label in (("save", "Save to library"), ("add", "Add from library…"),
                              ("export", "Export .character…"), ("import", "Import .character…")):
            b = QPushButton(label)
            b.setObjectName(f"character_library_{action}")
            b.clicked.connect(lambda _=False, a=action: self.library_action_requested.emit(a, self._character_id))
            self.library_buttons[action] = b
            library_row.addWidget(b)
        library_row.addStretch(1)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addLayout(form)
        layout.addLayout(actions)
        layout.addWidget(self.model_banner)
        layout.addWidget(QLabel("<b>Character sheet</b> — the anchor pictures; the checked ones define the "
                                "character:"))
        layout.addWidget(self.anchors, 1)
        layout.addWidget(self.sheet_info)
        layout.addLayout(library_row)

        self.name_edit.textEdited.connect(lambda t: self._edit("Rename character", {"name": t}, "name"))
        self.description_edit.textChanged.connect(self._identity_changed)
        self.subjects_edit.textEdited.connect(self._identity_changed)
        self.prompts_edit.textChanged.connect(self._identity_changed)
        self.dropout_slider.valueChanged.connect(
            lambda v: self._edit("Change likeness / pose variety", {"dropout": v / 100}, "dropout"))
        self.generate_button.clicked.connect(lambda: self.generate_anchors_requested.emit(self._character_id))
        self.recreate_button.clicked.connect(lambda: self.generate_anchors_requested.emit(self._character_id))
        self.reroll_button.clicked.connect(self._reroll)
        self.pick_button.clicked.connect(self._keep_checked)
        session.project_edited.connect(self._on_edited)

    @property
    def character_id(self) -> str:
        return self._character_id

    def set_character(self, character_id: str) -> None:
        self._character_id = character_id
        self._load()

    def _character(self):
        return self._session.character(self._character_id)

    def _on_edited(self, change: ProjectChange) -> None:
        if self._character() is None:
            return
        if change.initiator is self:
            self.heading.setText(self._character().name or "Unnamed character")
            if self._sheet_key(self._character()) != self._shown_sheet:
                self.refresh_anchors()  # own edits of prompts, seeds or the identity change the sheet
            return
        if change.touches("character", self._character_id):
            self._load()

    @staticmethod
    def _sheet_key(c) -> tuple:
        return (c.identity_file, c.anchor_prompts, c.anchor_seeds)

    def refresh_anchors(self) -> None:
        """Rebuild the character sheet from the character's identity file (placeholders while it has none)."""
        c = self._character()
        if c is None:
            return
        self._shown_sheet = self._sheet_key(c)
        self.anchors.clear()
        folder = self._session.folder
        sheet = read_sheet(folder, c.identity_file)
        usable = sheet is not None and sheet_matches(sheet, c)
        for i, (prompt, seed) in enumerate(zip(c.anchor_prompts, c.anchor_seeds)):
            pix = self._images.png(f"{folder}/{c.identity_file}:{i}", sheet.anchor_pngs[i], 160) \
                if usable and i < len(sheet.anchor_pngs) else None
            pix = pix or placeholder_pixmap(160, "Not drawn yet.\nPress “Generate anchors”.")
            item = QListWidgetItem(QIcon(pix), f"{i + 1}. {_short(prompt)}\nseed {seed}")
            item.setToolTip(f"{prompt}\nseed {seed}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.anchors.addItem(item)
        if usable:
            self.sheet_info.setText(f"Saved identity: made with “{sheet.model_source}” at {sheet.width}×"
                                    f"{sheet.height} px, {sheet.steps} steps; in the character library. Panels "
                                    "with this character are drawn against these anchors.")
        elif c.identity_file:
            self.sheet_info.setText("The saved identity file cannot be read or no longer matches; press "
                                    "“Generate anchors” to make it again.")
        else:
            self.sheet_info.setText("No anchors yet: press “Generate anchors” (they are drawn in the background "
                                    "and saved to the character library).")
        current = self.current_model()
        other = usable and current is not None and sheet.model_source != current
        if other:
            self.model_label.setText(f"These anchors were made with the model “{sheet.model_source}”, but the "
                                     f"current model is “{current}”: panels with {c.name or 'this character'} "
                                     "cannot be drawn until the anchors are re-created on this model (or you "
                                     "switch back in Model → Model…).")
        self.model_banner.setVisible(bool(other))
        self.library_buttons["save"].setEnabled(bool(c.identity_file))
        self.library_buttons["export"].setEnabled(bool(c.identity_file))
        tip = "" if c.identity_file else "Generate the anchors first: they are what is saved."
        self.library_buttons["save"].setToolTip(tip)
        self.library_buttons["export"].setToolTip(tip)

    def _load(self) -> None:
        c = self._character()
        if c is None:
            return
        self._loading = True
        try:
            self.heading.setText(c.name or "Unnamed character")
            if self.name_edit.text() != c.name:
                self.name_edit.setText(c.name)
            if self.description_edit.toPlainText() != c.description:
                self.description_edit.setPlainText(c.description)
            if parse_subjects(self.subjects_edit.text()) != c.subjects:
                self.subjects_edit.setText(", ".join(c.subjects))
            derived = c.anchor_prompts == default_anchor_prompts(c.description)
            text = "" if derived else "\n".join(c.anchor_prompts)
            if self.prompts_edit.toPlainText() != text:
                self.prompts_edit.setPlainText(text)
            self.dropout_slider.setValue(round(c.dropout * 100))
            self.problem_label.hide()  # the fields now show the character as it is: no refused edit is pending
        finally:
            self._loading = False
        self.refresh_anchors()

    def _edit(self, text: str, fields: dict, merge: str = "") -> None:
        if self._loading or not self._character_id:
            return
        c = self._character()
        if all(getattr(c, k) == v for k, v in fields.items()):
            return
        error = push_command(self._stack, self._session, EditCharacter(c.id, **fields),
                             ProjectChange.of("character", c.id, initiator=self),
                             f"character-{merge}:{c.id}" if merge else None)
        self.edit_refused.emit(error) if error else None

    def _identity_changed(self) -> None:
        """Description, subject words and anchor prompts must agree (every anchor prompt names every subject
        word), so they are applied together; while they disagree the reason shows under the fields and the
        character keeps its last consistent values."""
        c = self._character()
        if c is None or self._loading:
            return
        description = self.description_edit.toPlainText().strip()
        prompts = tuple(p.strip() for p in self.prompts_edit.toPlainText().splitlines() if p.strip())
        prompts = prompts or default_anchor_prompts(description)
        fields = {"description": description, "subjects": parse_subjects(self.subjects_edit.text()),
                  "anchor_prompts": prompts, "anchor_seeds": _seeds_for(c, len(prompts))}
        if all(getattr(c, k) == v for k, v in fields.items()):
            self.problem_label.hide()
            return
        if c.identity_file and any(getattr(c, k) != fields[k] for k in ("subjects", "anchor_prompts",
                                                                          "anchor_seeds")):
            fields["identity_file"] = None  # the saved anchors no longer show this character
        error = push_command(self._stack, self._session, EditCharacter(c.id, **fields),
                             ProjectChange.of("character", c.id, initiator=self), f"character-identity:{c.id}")
        self.problem_label.setText(error or "")
        self.problem_label.setVisible(bool(error))

    def _reroll(self) -> None:
        c = self._character()
        item = self.anchors.currentItem()
        if c is None or item is None:
            return
        i = item.data(Qt.ItemDataRole.UserRole)
        seeds = list(c.anchor_seeds)
        seeds[i] = random.randrange(2**31 - 1)
        self._edit(f"Re-roll anchor {i + 1}", {"anchor_seeds": tuple(seeds), "identity_file": None})
        self.generate_anchors_requested.emit(c.id)

    def _keep_checked(self) -> None:
        c = self._character()
        if c is None:
            return
        keep = [self.anchors.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.anchors.count())
                if self.anchors.item(i).checkState() == Qt.CheckState.Checked]
        if not keep or len(keep) == len(c.anchor_prompts):
            return
        self.prompts_edit.blockSignals(True)
        try:
            self._edit("Keep chosen anchors", {"anchor_prompts": tuple(c.anchor_prompts[i] for i in keep),
                                               "anchor_seeds": tuple(c.anchor_seeds[i] for i in keep),
                                               "identity_file": None})
        finally:
            self.prompts_edit.blockSignals(False)
        self._load()
        self.generate_anchors_requested.emit(c.id)


def _short(text: str, limit: int = 44) -> str:
    """``text`` cut at a word boundary with "…" when longer than ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut}…"


def _seeds_for(c, n: int) -> tuple[int, ...]:
    from app.project_model import default_anchor_seeds

    seeds = tuple(c.anchor_seeds[:n])
    return seeds + default_anchor_seeds(c.id, n)[len(seeds):]
