"""Panel editor: the panel text with the characters' subject words highlighted (and a warning when a chosen
character's word is missing), which characters appear, style, seed (lock/unlock), the size taken from its page
slot, Generate / Regenerate / Variations, the alternates gallery with "Use this", the mask-overlay toggle and the
"likeness ↔ pose variety" slider (attention dropout).

Every change goes through ``push_edit`` (undoable); generation requests leave as ``generate_requested``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QSyntaxHighlighter, QTextCharFormat, QUndoStack
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPlainTextEdit, QPushButton, QSlider, QSpinBox, QVBoxLayout,
                               QWidget)

from app.app_session import AppSession, ProjectChange
from app.commands import ChooseAlternate, EditPanel
from app.model_profiles import profile_for
from ui.image_cache import ImageCache, placeholder_pixmap
from ui.project_undo import push_command

__all__ = ["PanelEditor", "SubjectHighlighter", "missing_subjects"]

_WORD_COLORS = ("#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00")


def missing_subjects(text: str, characters) -> list[str]:
    """Names of chosen characters none of whose subject words appear in ``text`` (whole words, any case)."""
    out = []
    for c in characters:
        words = [w for w in c.subjects if w.strip()]
        if words and not any(re.search(rf"\b{re.escape(w)}\b", text, re.IGNORECASE) for w in words):
            out.append(f"{c.name} (“{words[0]}”)")
    return out


class SubjectHighlighter(QSyntaxHighlighter):
    def __init__(self, document) -> None:
        super().__init__(document)
        self._patterns: list[tuple[re.Pattern, QTextCharFormat]] = []

    def set_characters(self, characters) -> None:
        self._patterns = []
        for i, c in enumerate(characters):
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(_WORD_COLORS[i % len(_WORD_COLORS)]))
            fmt.setFontWeight(QFont.Weight.Bold)
            fmt.setFontUnderline(True)
            for w in c.subjects:
                if w.strip():
                    self._patterns.append((re.compile(rf"\b{re.escape(w)}\b", re.IGNORECASE), fmt))
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt API
        for pattern, fmt in self._patterns:
            for m in pattern.finditer(text):
                self.setFormat(m.start(), m.end() - m.start(), fmt)


class PanelEditor(QWidget):
    generate_requested = Signal(str, int)  # panel id, how many images (1 = generate, 4 = variations)
    edit_refused = Signal(str)             # one sentence: why an edit was not applied

    def __init__(self, session: AppSession, stack: QUndoStack, images: ImageCache,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel_editor")
        self._session, self._stack, self._images = session, stack, images
        self._panel_id = ""
        self._loading = False
        self.model_source: Callable[[], str | None] = lambda: None  # the model later jobs use (size note)

        self.heading = QLabel()
        self.heading.setStyleSheet("font-size: 16px; font-weight: bold;")
        self.text_edit = QPlainTextEdit()
        self.text_edit.setObjectName("panel_text")
        self.text_edit.setPlaceholderText("What happens in this panel, e.g. “the fox reads a map under a tree”. "
                                          "Use each character's subject word.")
        self.text_edit.setMaximumHeight(90)
        self.highlighter = SubjectHighlighter(self.text_edit.document())
        self.warning = QLabel()
        self.warning.setObjectName("panel_warning")
        self.warning.setStyleSheet("color: #a05a00;")
        self.warning.setWordWrap(True)
        self.characters_list = QListWidget()
        self.characters_list.setObjectName("panel_characters")
        self.characters_list.setMaximumHeight(80)
        self.characters_list.setFlow(QListWidget.Flow.LeftToRight)
        self.style_edit = QLineEdit()
        self.style_edit.setPlaceholderText("e.g. watercolor, soft light")
        self.negative_edit = QLineEdit()
        self.negative_edit.setPlaceholderText("what to avoid, e.g. blurry, text")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_lock = QCheckBox("Lock")
        self.seed_lock.setToolTip("A locked seed is kept by Regenerate; unlocked, Regenerate picks a new one.")
        self.size_label = QLabel()
        self.dropout_slider = QSlider(Qt.Orientation.Horizontal)
        self.dropout_slider.setObjectName("panel_dropout")
        self.dropout_slider.setRange(0, 99)  # the project keeps 0-0.99: dropout 1 would drop every shared patch
        self.dropout_slider.setToolTip("Left: the characters look more like their anchors. "
                                       "Right: more freedom of pose and layout.")

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.seed_lock)
        dropout_row = QHBoxLayout()
        dropout_row.addWidget(QLabel("Likeness"))
        dropout_row.addWidget(self.dropout_slider, 1)
        dropout_row.addWidget(QLabel("Pose variety"))
        form = QFormLayout()
        form.addRow("Characters:", self.characters_list)
        form.addRow("Style:", self.style_edit)
        form.addRow("Avoid:", self.negative_edit)
        form.addRow("Seed:", seed_row)
        form.addRow("Size:", self.size_label)
        form.addRow("Consistency:", dropout_row)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("panel_generate")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Draw it again (a new seed unless the seed is locked).")
        self.variations_button = QPushButton("4 Variations")
        self.generate_button.clicked.connect(lambda: self.generate_requested.emit(self._panel_id, 1))
        self.regenerate_button.clicked.connect(self._regenerate)
        self.variations_button.clicked.connect(lambda: self.generate_requested.emit(self._panel_id, 4))
        buttons = QHBoxLayout()
        for b in (self.generate_button, self.regenerate_button, self.variations_button):
            buttons.addWidget(b)
        buttons.addStretch(1)

        self.image_label = QLabel()
        self.image_label.setObjectName("panel_image")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(240, 240)
        self.mask_toggle = QCheckBox("Show where each character was seen")
        self.mask_toggle.setObjectName("panel_mask_toggle")
        self.mask_toggle.toggled.connect(self._show_current)
        self.mask_legend = QLabel()
        self.mask_legend.setObjectName("panel_mask_legend")
        self.mask_legend.hide()
        self.gallery = QListWidget()
        self.gallery.setObjectName("panel_alternates")
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(96, 96))
        self.gallery.setMaximumHeight(130)
        self.gallery.setFlow(QListWidget.Flow.LeftToRight)
        self.gallery.setWrapping(False)
        self.use_button = QPushButton("Use this")
        self.use_button.setObjectName("panel_use_alternate")
        self.use_button.clicked.connect(self._use_selected)
        gallery_row = QHBoxLayout()
        gallery_row.addWidget(self.gallery, 1)
        gallery_row.addWidget(self.use_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.text_edit)
        layout.addWidget(self.warning)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.image_label, 1)
        mask_row = QHBoxLayout()
        mask_row.addWidget(self.mask_toggle)
        mask_row.addWidget(self.mask_legend, 1)
        layout.addLayout(mask_row)
        layout.addWidget(QLabel("Alternates (every picture drawn for this panel):"))
        layout.addLayout(gallery_row)

        self.text_edit.textChanged.connect(self._text_changed)
        self.style_edit.textEdited.connect(lambda t: self._edit("Edit panel style", {"style": t}, "style"))
        self.negative_edit.textEdited.connect(lambda t: self._edit("Edit what to avoid", {"negative_prompt": t},
                                                                   "negative"))
        self.seed_spin.valueChanged.connect(lambda v: self._edit("Change seed", {"seed": v}, "seed"))
        self.seed_lock.toggled.connect(lambda on: self._edit("Lock seed" if on else "Unlock seed",
                                                             {"seed_locked": on}))
        self.dropout_slider.valueChanged.connect(
            lambda v: self._edit("Change likeness / pose variety", {"dropout": v / 100}, "dropout"))
        self.characters_list.itemChanged.connect(self._characters_changed)
        session.project_edited.connect(self._on_edited)

    # -- binding ---------------------------------------------------------------------------------------------
    @property
    def panel_id(self) -> str:
        return self._panel_id

    def set_panel(self, panel_id: str) -> None:
        self._panel_id = panel_id
        self._load()

    def _panel(self):
        return self._session.panel(self._panel_id)

    def _on_edited(self, change: ProjectChange) -> None:
        if not self._panel_id or self._panel() is None:
            return
        if change.initiator is self and change.kinds == {"panel"}:
            self._refresh_derived()
            return
        if change.touches("panel", self._panel_id) or "character" in change.kinds or "page" in change.kinds:
            self._load()

    def _load(self) -> None:
        panel = self._panel()
        if panel is None:
            return
        project = self._session.project
        self._loading = True
        try:
            index = [p.id for p in project.panels].index(panel.id) + 1
            self.heading.setText(f"Panel {index}")
            if self.text_edit.toPlainText() != panel.text:
                self.text_edit.setPlainText(panel.text)
            for edit, value in ((self.style_edit, panel.style), (self.negative_edit, panel.negative_prompt)):
                if edit.text() != value:  # setText moves the cursor to the end while the user types
                    edit.setText(value)
            self.seed_spin.setValue(min(panel.seed, 2**31 - 1))
            self.seed_lock.setChecked(panel.seed_locked)
            dropout = panel.dropout
            if dropout is None:
                chosen = [c for c in project.characters if c.id in panel.character_ids]
                dropout = min(c.dropout for c in chosen) if chosen else 0.5  # what the job uses (job_plan)
            self.dropout_slider.setValue(round(dropout * 100))
            self.characters_list.clear()
            for c in project.characters:
                item = QListWidgetItem(c.name)
                item.setData(Qt.ItemDataRole.UserRole, c.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if c.id in panel.character_ids
                                   else Qt.CheckState.Unchecked)
                self.characters_list.addItem(item)
            picked = self.gallery.currentItem()
            picked = picked.data(Qt.ItemDataRole.UserRole) if picked is not None and picked.isSelected() else None
            self.gallery.clear()
            for n, asset in enumerate(panel.alternates, 1):
                pix = self._images.asset(self._session.folder, asset, 96) or placeholder_pixmap(96, "missing")
                label = f"{n}" + (" ✓" if asset == panel.current else "")
                item = QListWidgetItem(QIcon(pix), label)
                item.setData(Qt.ItemDataRole.UserRole, asset)
                self.gallery.addItem(item)
                if asset == picked:  # a picture arriving for this panel keeps the user's choice selected
                    self.gallery.setCurrentItem(item)
        finally:
            self._loading = False
        self._refresh_derived()

    def size_text(self, width: int, height: int) -> str:
        profile = profile_for(self.model_source())
        if profile.fixed_size:
            fw, fh = profile.fixed_size
            return (f"{fw} × {fh} px: {profile.label} draws every panel at this one size (the page crops it to "
                    "the slot)")
        return f"{width} × {height} px (its shape follows the page slot it is in)"

    def _refresh_derived(self) -> None:
        panel = self._panel()
        project = self._session.project
        chosen = [c for c in project.characters if c.id in panel.character_ids]
        self.highlighter.set_characters(project.characters)
        missing = missing_subjects(panel.text, chosen)
        self.warning.setText("" if not missing else
                             "The text does not name " + ", ".join(missing) +
                             ": write the subject word so the engine knows where the character is.")
        self.warning.setVisible(bool(missing))
        self.size_label.setText(self.size_text(panel.width, panel.height))
        has_image = bool(panel.current)
        self.regenerate_button.setEnabled(has_image)
        self.use_button.setEnabled(len(panel.alternates) > 1)
        self._show_current()

    def _show_current(self) -> None:
        panel = self._panel()
        if panel is None:
            return
        pix = self._images.asset(self._session.folder, panel.current, 320)
        self.mask_legend.hide()
        if pix is None:
            self.image_label.setPixmap(placeholder_pixmap(240, "Not drawn yet.\nPress Generate."))
            return
        if self.mask_toggle.isChecked():
            mask_id = _mask_asset(self._session.folder, panel.current)
            mask = self._images.asset(self._session.folder, mask_id, 320)
            names = {w: c.name for c in self._session.project.characters for w in c.subjects}
            self.mask_legend.setText(_mask_legend(self._session.folder, mask_id, names) if mask is not None else
                                     "No mask: this picture was drawn without characters.")
            self.mask_legend.show()
            if mask is not None:
                from PySide6.QtGui import QPainter
                pix = pix.copy()
                p = QPainter(pix)
                p.setOpacity(0.45)
                p.drawPixmap(pix.rect(), mask)
                p.end()
        self.image_label.setPixmap(pix)

    # -- edits -----------------------------------------------------------------------------------------------
    def _edit(self, text: str, fields: dict, merge: str = "") -> None:
        if self._loading or not self._panel_id:
            return
        panel = self._panel()
        if all(getattr(panel, k) == v for k, v in fields.items()):
            return
        self._push(EditPanel(panel.id, **fields), f"panel-{merge}:{panel.id}" if merge else None)

    def _push(self, cmd, merge_key=None) -> None:
        error = push_command(self._stack, self._session, cmd,
                             ProjectChange.of("panel", self._panel_id, initiator=self), merge_key)
        self.edit_refused.emit(error) if error else None

    def _text_changed(self) -> None:
        self._edit("Edit panel text", {"text": self.text_edit.toPlainText()}, "text")

    def _characters_changed(self, _item: QListWidgetItem) -> None:
        ids = tuple(self.characters_list.item(i).data(Qt.ItemDataRole.UserRole)
                    for i in range(self.characters_list.count())
                    if self.characters_list.item(i).checkState() == Qt.CheckState.Checked)
        self._edit("Choose characters", {"character_ids": ids})

    def _regenerate(self) -> None:
        panel = self._panel()
        if panel is not None and not panel.seed_locked:
            import random
            self._edit("New seed", {"seed": random.randrange(2**31 - 1)})
        self.generate_requested.emit(self._panel_id, 1)

    def _use_selected(self) -> None:
        item = self.gallery.currentItem()
        if item is None:
            return
        self._push(ChooseAlternate(self._panel_id, item.data(Qt.ItemDataRole.UserRole)))
        self._load()


def _mask_legend(folder, mask_id: str | None, names: dict[str, str]) -> str:
    """HTML: a coloured square and the character (subject word) for each colour of a mask overlay."""
    from html import escape

    from app.assets import read_sidecar
    meta = read_sidecar(folder, mask_id) or {} if mask_id else {}
    parts = [f'<span style="color: rgb({c[0]},{c[1]},{c[2]})">■</span> '
             f'{escape(names[w] + f" ({w})" if names.get(w) else str(w))}'
             for w, c in zip(meta.get("subjects") or (), meta.get("colours") or ()) if len(c) == 3]
    return "  ".join(parts)


def _mask_asset(folder, asset_id: str | None) -> str | None:
    """The mask-overlay asset recorded in an image's sidecar (``extras.mask_asset``), if the engine wrote one."""
    if folder is None or not asset_id:
        return None
    from app.assets import read_sidecar
    try:
        meta = read_sidecar(folder, asset_id) or {}
    except Exception:
        return None
    return meta.get("mask_asset") or (meta.get("extras") or {}).get("mask_asset")
