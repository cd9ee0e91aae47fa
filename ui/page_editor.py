"""Page editor: a ``QGraphicsView`` of the page (trim, bleed and safe-area guides), and beside it the page's
layout template, the panel in the selected slot (and its zoom), the balloons (add, type into, restyle, remove;
drag to move, drag the orange handle to move the tail), and page order.

Every change is an ``app.commands`` command pushed on the undo stack; drags fold into one undo step.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap, QUndoStack
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGraphicsScene, QGraphicsView, QGroupBox,
                               QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSlider, QVBoxLayout, QWidget)

from app.app_session import AppSession, ProjectChange
from app.commands import (AddBalloon, AssignPanel, EditBalloon, MoveBalloon, MovePage, MoveTail, RemoveBalloon,
                          SetFraming, SetLayout)
from app.layouts import LayoutError, all_layouts, load_layout
from app.page_composition import compose_page
from app.project_model import BALLOON_KINDS, Balloon
from ui.image_cache import ImageCache
from ui.page_items import BalloonItem, PageItem, SlotItem, qrect
from ui.project_undo import push_command

__all__ = ["PageEditor", "compose"]

_MIN_TEXT_PT = 4.0  # the smallest balloon text size a project accepts (``app.project_codec``)
_BALLOON_LABELS = {"speech": "Speech", "thought": "Thought", "shout": "Shout", "caption": "Caption"}


def compose(session: AppSession, page_id: str, bleed: bool = True):
    project = session.project
    page = project.page(page_id)
    index = project.pages.index(page)
    numbers = {p.id: i + 1 for i, p in enumerate(project.panels)}
    return compose_page(project.book, page, index, {p.id: p for p in project.panels}, session.folder or ".",
                        bleed=bleed, panel_numbers=numbers)


class PageView(QGraphicsView):
    """The page's view. While it has the focus and ``delete_balloon()`` can act (a balloon is selected), Delete and
    Backspace remove that balloon: the view takes the keys before the window's "Delete selected", which would
    remove the whole page."""

    _DELETE_KEYS = (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)

    def __init__(self, scene: QGraphicsScene) -> None:
        super().__init__(scene)
        self.setObjectName("page_view")
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(QColor("#5a5a60"))
        self.setAcceptDrops(True)
        self.can_delete_balloon: Callable[[], bool] = lambda: False
        self.delete_balloon: Callable[[], None] = lambda: None

    def event(self, event) -> bool:  # noqa: D102 - Qt API
        if (event.type() == QEvent.Type.ShortcutOverride and event.key() in self._DELETE_KEYS
                and self.can_delete_balloon()):
            event.accept()  # the key comes to keyPressEvent instead of triggering the window's shortcut
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.key() in self._DELETE_KEYS and self.can_delete_balloon():
            self.delete_balloon()
            event.accept()
            return
        super().keyPressEvent(event)

    def fit(self) -> None:
        r = self.scene().itemsBoundingRect()
        if not r.isEmpty():
            self.fitInView(r.adjusted(-12, -12, 12, 12), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self.fit()


class PageEditor(QWidget):
    edit_refused = Signal(str)

    def __init__(self, session: AppSession, stack: QUndoStack, images: ImageCache,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("page_editor")
        self._session, self._stack, self._images = session, stack, images
        self._page_id = ""
        self.selected_slot = 0
        self.selected_balloon = ""
        self._loading = False
        self._framing = False  # an own pan/zoom edit is being applied: redraw the picture, keep the scene's items
        self.page_item: PageItem | None = None
        self.slot_items: list[SlotItem] = []
        self.balloon_items: dict[str, BalloonItem] = {}

        self.scene = QGraphicsScene(self)
        self.view = PageView(self.scene)
        self.view.can_delete_balloon = lambda: bool(self.selected_balloon)
        self.view.delete_balloon = self._remove_balloon

        self.heading = QLabel()
        self.heading.setStyleSheet("font-size: 16px; font-weight: bold;")
        self.earlier_button = QPushButton("◀ Earlier")
        self.later_button = QPushButton("Later ▶")
        self.earlier_button.clicked.connect(lambda: self._move_page(-1))
        self.later_button.clicked.connect(lambda: self._move_page(+1))
        order = QHBoxLayout()
        order.addWidget(self.earlier_button)
        order.addWidget(self.later_button)

        self.layout_combo = QComboBox()
        self.layout_combo.setObjectName("page_layout")
        for t in all_layouts():
            self.layout_combo.addItem(f"{t.name} ({len(t.slots)} slots)", t.id)
        self.layout_combo.activated.connect(self._layout_chosen)

        slot_box = QGroupBox("Selected slot")
        self.slot_label = QLabel()
        self.slot_label.setWordWrap(True)
        self.slot_panel_combo = QComboBox()
        self.slot_panel_combo.setObjectName("slot_panel")
        self.slot_panel_combo.activated.connect(self._slot_panel_chosen)
        self.zoom_slider = QSlider(Qt.Orientation.Horizontal)
        self.zoom_slider.setRange(100, 400)
        self.zoom_slider.valueChanged.connect(self._zoom_changed)
        f = QFormLayout(slot_box)
        f.addRow(self.slot_label)
        f.addRow("Panel:", self.slot_panel_combo)
        f.addRow("Zoom:", self.zoom_slider)

        balloon_box = QGroupBox("Balloons and captions")
        self.add_buttons = {}
        add_row = QHBoxLayout()
        for kind in BALLOON_KINDS:
            b = QPushButton(f"+ {_BALLOON_LABELS[kind]}")
            b.setObjectName(f"add_balloon_{kind}")
            b.clicked.connect(lambda _=False, k=kind: self.add_balloon(k))
            self.add_buttons[kind] = b
            add_row.addWidget(b)
        self.balloon_text = QPlainTextEdit()
        self.balloon_text.setObjectName("balloon_text")
        self.balloon_text.setPlaceholderText("Select a balloon on the page, then type its words here.")
        self.balloon_text.setMaximumHeight(80)
        self.balloon_kind = QComboBox()
        for kind in BALLOON_KINDS:
            self.balloon_kind.addItem(_BALLOON_LABELS[kind], kind)
        self.balloon_size = QDoubleSpinBox()
        # The lowest value stands for "fit" (auto size); a set size is 4 pt or more, as the project accepts.
        self.balloon_size.setRange(_MIN_TEXT_PT - 1, 72)
        self.balloon_size.setDecimals(1)
        self.balloon_size.setSpecialValueText("fit")
        self.balloon_size.setSuffix(" pt")
        self.remove_balloon_button = QPushButton("Remove balloon")
        bf = QFormLayout(balloon_box)
        bf.addRow(add_row)
        bf.addRow("Words:", self.balloon_text)
        bf.addRow("Kind:", self.balloon_kind)
        bf.addRow("Text size:", self.balloon_size)
        bf.addRow(self.remove_balloon_button)
        self.balloon_text.textChanged.connect(self._balloon_text_changed)
        self.balloon_kind.activated.connect(
            lambda _i: self._edit_balloon(kind=self.balloon_kind.currentData()))
        self.balloon_size.valueChanged.connect(
            lambda v: self._edit_balloon(font_size_pt=float(v) if v >= _MIN_TEXT_PT else None))
        self.remove_balloon_button.clicked.connect(self._remove_balloon)

        guides = QLabel("<span style='color:#c00'>red dashes</span>: bleed edge (cut away when printed) · "
                        "<span style='color:#0078ff'>blue dashes</span>: page edge (trim) · "
                        "<span style='color:#00aa00'>green dots</span>: keep text and faces inside")
        guides.setWordWrap(True)
        side = QVBoxLayout()
        side.addWidget(self.heading)
        side.addLayout(order)
        side.addWidget(QLabel("Layout:"))
        side.addWidget(self.layout_combo)
        side.addWidget(slot_box)
        side.addWidget(balloon_box)
        side.addWidget(guides)
        side.addStretch(1)
        side_widget = QWidget()
        side_widget.setLayout(side)
        side_widget.setFixedWidth(320)
        layout = QHBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(side_widget)
        session.project_edited.connect(self._on_edited)

    # -- binding ---------------------------------------------------------------------------------------------
    @property
    def page_id(self) -> str:
        return self._page_id

    def set_page(self, page_id: str) -> None:
        if page_id != self._page_id:
            self.selected_slot, self.selected_balloon = 0, ""
        self._page_id = page_id
        self.rebuild()

    def _page(self):
        return self._session.page(self._page_id)

    def _on_edited(self, change: ProjectChange) -> None:
        if self._page() is None or not self.isVisible() and change.initiator is not self:
            return
        if change.initiator is self and self._framing and self.page_item is not None:
            # A drag or wheel in a slot: rebuilding would delete the slot item that is handling the mouse.
            self.page_item.composition = compose(self._session, self._page_id)
            self.page_item.update()
            self.select_slot(self.selected_slot)
        elif {"page", "panel", "asset", "book"} & change.kinds:
            self.rebuild()

    def rebuild(self) -> None:
        page = self._page()
        if page is None:
            return
        project = self._session.project
        self._loading = True
        try:
            self.scene.clear()
            self.slot_items, self.balloon_items = [], {}
            index = project.pages.index(page)
            self.heading.setText(f"Page {index + 1} of {len(project.pages)}")
            self.earlier_button.setEnabled(index > 0)
            self.later_button.setEnabled(index < len(project.pages) - 1)
            try:
                comp = compose(self._session, page.id)
            except LayoutError as exc:  # a project file naming a layout this version does not have
                self.layout_combo.setCurrentIndex(-1)
                self.slot_label.setText(f"Page {index + 1} names the layout {page.layout!r}, which this version "
                                        "does not have: choose a layout above (the page is kept as it is until "
                                        "then).")
                self.edit_refused.emit(str(exc))
                return
            self.page_item = PageItem(comp)
            self.scene.addItem(self.page_item)
            template = load_layout(page.layout)
            from app.page_geometry import slot_rects
            gutter = page.gutter_in if page.gutter_in is not None else project.book.gutter_in
            self.slot_items = []
            for i, r in enumerate(slot_rects(comp.geometry, template, gutter)):
                item = SlotItem(i, qrect(r), self.select_slot, self.place_panel, self._pan, self._zoom_by)
                self.scene.addItem(item)
                self.slot_items.append(item)
            self.balloon_items = {}
            g = comp.geometry
            for b in page.balloons:
                x, y = g.from_trim(b.x, b.y)
                tail = None if b.tail_x is None else QPointF(*g.from_trim(b.tail_x, b.tail_y))
                item = BalloonItem(b.id, QRectF(x, y, b.w * g.trim.w, b.h * g.trim.h), tail, self.select_balloon,
                                   self._balloon_moved, self._tail_moved)
                self.scene.addItem(item)
                self.balloon_items[b.id] = item
            self.scene.setSceneRect(QRectF(0, 0, g.media_w, g.media_h))
            self.layout_combo.setCurrentIndex(max(0, self.layout_combo.findData(page.layout)))
            self.slot_panel_combo.clear()
            self.slot_panel_combo.addItem("(empty)", None)
            for n, p in enumerate(project.panels, 1):
                self.slot_panel_combo.addItem(f"Panel {n}: {p.text[:30] or '(no text)'}", p.id)
        finally:
            self._loading = False
        self.select_slot(min(self.selected_slot, max(0, len(self.slot_items) - 1)))
        self.select_balloon(self.selected_balloon if self.selected_balloon in self.balloon_items else "")
        self.view.fit()

    def thumbnail(self, page_id: str, size: int) -> QPixmap | None:
        """The page drawn small (no guides) for the project browser."""
        try:
            comp = compose(self._session, page_id, bleed=False)
        except Exception:  # a broken page shows a placeholder in the list, never an exception
            return None
        g = comp.geometry
        scale = size / max(g.media_w, g.media_h)
        pix = QPixmap(max(1, round(g.media_w * scale)), max(1, round(g.media_h * scale)))
        pix.fill(QColor("white"))
        p = QPainter(pix)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.scale(scale, scale)
        PageItem(comp, show_guides=False).paint(p, None)
        p.end()
        return pix

    # -- selection -------------------------------------------------------------------------------------------
    def select_slot(self, index: int) -> None:
        self.selected_slot = index
        page = self._page()
        for item in self.slot_items:
            item.set_selected(item.index == index)
        if page is None or index >= len(page.slots):
            self.slot_label.setText("This layout has no slots.")
            return
        fill = page.slots[index]
        self._loading = True
        self.slot_label.setText(f"Slot {index + 1} of {len(page.slots)}")
        self.slot_panel_combo.setCurrentIndex(max(0, self.slot_panel_combo.findData(fill.panel_id)))
        self.zoom_slider.setValue(round(fill.zoom * 100))
        self.zoom_slider.setEnabled(fill.panel_id is not None)
        self._loading = False

    def select_balloon(self, balloon_id: str) -> None:
        self.selected_balloon = balloon_id
        for bid, item in self.balloon_items.items():
            item.set_selected(bid == balloon_id)
        on = bool(balloon_id)
        for w in (self.balloon_text, self.balloon_kind, self.balloon_size, self.remove_balloon_button):
            w.setEnabled(on)
        self._loading = True
        if on:
            b = self._page().balloon(balloon_id)
            if self.balloon_text.toPlainText() != b.text:
                self.balloon_text.setPlainText(b.text)
            self.balloon_kind.setCurrentIndex(self.balloon_kind.findData(b.kind))
            self.balloon_size.setValue(b.font_size_pt or self.balloon_size.minimum())
        else:
            self.balloon_text.setPlainText("")
        self._loading = False

    # -- edits -----------------------------------------------------------------------------------------------
    def _push(self, cmd, merge_key=None) -> None:
        error = push_command(self._stack, self._session, cmd, ProjectChange.of("page", self._page_id,
                                                                               initiator=self), merge_key)
        if error:
            self.edit_refused.emit(error)

    def _layout_chosen(self, _index: int) -> None:
        layout = self.layout_combo.currentData()
        page = self._page()
        if page is None or layout == page.layout:
            return
        self._push(SetLayout(page.id, layout, len(load_layout(layout).slots)))

    def place_panel(self, slot: int, panel_id: str | None) -> None:
        self.selected_slot = slot
        self._push(AssignPanel(self._page_id, slot, panel_id))

    def _slot_panel_chosen(self, _index: int) -> None:
        if not self._loading:
            self.place_panel(self.selected_slot, self.slot_panel_combo.currentData())

    def _pan(self, slot: int, dx: float, dy: float) -> None:
        fill = self._page().slots[slot]
        if fill.panel_id is None:
            return
        fx = min(1.0, max(0.0, fill.focus_x + dx / fill.zoom))
        fy = min(1.0, max(0.0, fill.focus_y + dy / fill.zoom))
        self._frame(SetFraming(self._page_id, slot, focus_x=fx, focus_y=fy))

    def _zoom_by(self, slot: int, factor: float) -> None:
        fill = self._page().slots[slot]
        if fill.panel_id is not None:
            self._frame(SetFraming(self._page_id, slot, zoom=min(4.0, max(1.0, fill.zoom * factor))))

    def _frame(self, cmd: SetFraming) -> None:
        self._framing = True
        try:
            self._push(cmd)
        finally:
            self._framing = False

    def _zoom_changed(self, value: int) -> None:
        if not self._loading:
            self._zoom_by(self.selected_slot, (value / 100) / self._page().slots[self.selected_slot].zoom)

    def add_balloon(self, kind: str) -> None:
        page = self._page()
        if page is None:
            return
        import uuid
        n = len(page.balloons)
        x, y = 0.08 + 0.05 * (n % 5), 0.06 + 0.05 * (n % 5)
        tail = (None, None) if kind == "caption" else (x + 0.12, y + 0.2)
        text = "" if kind == "caption" else ""
        balloon = Balloon(id=f"b-{uuid.uuid4().hex[:8]}", kind=kind, text=text, x=x, y=y,
                          w=0.42 if kind == "caption" else 0.3, h=0.08 if kind == "caption" else 0.12,
                          tail_x=tail[0], tail_y=tail[1])
        self.selected_balloon = balloon.id
        self._push(AddBalloon(page.id, balloon))
        self.balloon_text.setFocus()

    def _edit_balloon(self, **fields) -> None:
        if self._loading or not self.selected_balloon:
            return
        b = self._page().balloon(self.selected_balloon)
        if all(getattr(b, k) == v for k, v in fields.items()):
            return
        if fields.get("kind") == "caption":
            fields.update(tail_x=None, tail_y=None)
        elif "kind" in fields and b.tail_x is None:
            fields.update(tail_x=min(1.0, b.x + b.w / 2), tail_y=min(1.0, b.y + b.h + 0.1))
        self._push(EditBalloon(self._page_id, b.id, **fields))

    def _balloon_text_changed(self) -> None:
        self._edit_balloon(text=self.balloon_text.toPlainText())

    def _remove_balloon(self) -> None:
        if self.selected_balloon:
            bid, self.selected_balloon = self.selected_balloon, ""
            self._push(RemoveBalloon(self._page_id, bid))

    def _to_trim(self, p: QPointF) -> tuple[float, float]:
        g = compose(self._session, self._page_id).geometry
        return ((p.x() - g.trim.x) / g.trim.w, (p.y() - g.trim.y) / g.trim.h)

    def _balloon_moved(self, balloon_id: str, pos: QPointF) -> None:
        b = self._page().balloon(balloon_id)
        x, y = self._to_trim(pos)
        x, y = min(max(0.0, x), 1.0 - b.w), min(max(0.0, y), 1.0 - b.h)
        self._push(MoveBalloon(self._page_id, balloon_id, x, y))

    def _tail_moved(self, balloon_id: str, pos: QPointF) -> None:
        x, y = self._to_trim(pos)
        self._push(MoveTail(self._page_id, balloon_id, min(max(0.0, x), 1.0), min(max(0.0, y), 1.0)))

    def _move_page(self, delta: int) -> None:
        project = self._session.project
        index = project.pages.index(self._page())
        self._push(MovePage(self._page_id, index + delta))
