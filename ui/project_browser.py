"""Project browser: the project's characters, panels and pages as lists with thumbnails, each with an Add button.

Clicking an item selects it in the ``AppSession`` (the window shows its editor); the lists follow
``project_changed``/``project_edited`` and redraw only the section an edit touched.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QSplitter,
                               QVBoxLayout, QWidget)

from app.anchor_jobs import read_sheet
from app.app_session import AppSession, ProjectChange
from ui.image_cache import ImageCache, placeholder_pixmap
from ui.page_items import PANEL_MIME

__all__ = ["ProjectBrowser"]

_THUMB = 64


class _PanelList(QListWidget):
    """The panel list: items drag onto page slots (mime ``PANEL_MIME`` and text ``panel:<id>``)."""

    def mimeData(self, items):  # noqa: N802 - Qt API
        mime = QMimeData()
        if items:
            panel_id = items[0].data(Qt.ItemDataRole.UserRole)
            mime.setData(PANEL_MIME, QByteArray(panel_id.encode()))
            mime.setText(f"panel:{panel_id}")
        return mime


class _Section(QWidget):
    def __init__(self, title: str, add_text: str, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.label = QLabel(f"<b>{title}</b>")
        self.add_button = QPushButton(add_text)
        self.add_button.setObjectName(f"add_{kind}")
        self.list = _PanelList() if kind == "panel" else QListWidget()
        if kind == "panel":
            self.list.setDragEnabled(True)
            self.list.setDragDropMode(QListWidget.DragDropMode.DragOnly)
            self.list.setToolTip("Drag a panel onto a page slot.")
        self.list.setObjectName(f"{kind}_list")
        self.list.setIconSize(QSize(_THUMB, _THUMB))
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setSpacing(2)
        head = QHBoxLayout()
        head.addWidget(self.label, 1)
        head.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(head)
        layout.addWidget(self.list)


class ProjectBrowser(QWidget):
    add_requested = Signal(str)  # "character" | "panel" | "page"

    def __init__(self, session: AppSession, images: ImageCache,
                 page_thumbnail: Callable[[str, int], QPixmap | None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("project_browser")
        self._session, self._images = session, images
        self._page_thumbnail = page_thumbnail
        self._syncing = False
        self.sections = {
            "character": _Section("Characters", "+ Character", "character"),
            "panel": _Section("Panels", "+ Panel", "panel"),
            "page": _Section("Pages", "+ Page", "page"),
        }
        splitter = QSplitter(Qt.Orientation.Vertical)
        for kind, section in self.sections.items():
            section.add_button.clicked.connect(lambda _=False, k=kind: self.add_requested.emit(k))
            section.list.currentItemChanged.connect(lambda cur, _prev, k=kind: self._clicked(k, cur))
            section.list.itemClicked.connect(lambda item, k=kind: self._clicked(k, item))
            splitter.addWidget(section)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        session.project_changed.connect(lambda _p: self.refresh())
        session.project_edited.connect(self._on_edited)
        session.selection_changed.connect(self._on_selection)
        self.refresh()

    def list_for(self, kind: str) -> QListWidget:
        return self.sections[kind].list

    def refresh(self, kinds: frozenset[str] = frozenset({"character", "panel", "page"})) -> None:
        project = self._session.project
        self._syncing = True
        try:
            for kind in kinds & set(self.sections):
                lst = self.sections[kind].list
                lst.clear()
                if project is None:
                    continue
                for item in self._items(kind):
                    lst.addItem(item)
            for section in self.sections.values():
                section.add_button.setEnabled(project is not None)
            self._on_selection(*self._session.selection)
        finally:
            self._syncing = False

    def _items(self, kind: str) -> list[QListWidgetItem]:
        project, folder = self._session.project, self._session.folder
        out = []
        if kind == "character":
            for c in project.characters:
                words = ", ".join(c.subjects) or "no subject word yet"
                sheet = read_sheet(folder, c.identity_file)
                pix = (self._images.png(f"{folder}/{c.identity_file}:0", sheet.anchor_pngs[0], _THUMB)
                       if sheet and sheet.anchor_pngs else None) or placeholder_pixmap(
                    _THUMB, (c.name or "?")[:1].upper())
                item = QListWidgetItem(QIcon(pix), f"{c.name or 'Unnamed'}\n{words}")
                item.setData(Qt.ItemDataRole.UserRole, c.id)
                out.append(item)
        elif kind == "panel":
            for n, p in enumerate(project.panels, 1):
                pix = self._images.asset(folder, p.current, _THUMB) or placeholder_pixmap(_THUMB, "not drawn")
                text = p.text.strip() or "(no text yet)"
                item = QListWidgetItem(QIcon(pix), f"Panel {n}\n{text[:40]}")
                item.setToolTip(text)
                item.setData(Qt.ItemDataRole.UserRole, p.id)
                out.append(item)
        else:
            for n, pg in enumerate(project.pages, 1):
                pix = self._page_thumbnail(pg.id, _THUMB) if self._page_thumbnail else None
                filled = sum(1 for s in pg.slots if s.panel_id)
                item = QListWidgetItem(QIcon(pix or placeholder_pixmap(_THUMB, pg.layout)),
                                       f"Page {n}\n{pg.layout} · {filled}/{len(pg.slots)} panels")
                item.setData(Qt.ItemDataRole.UserRole, pg.id)
                out.append(item)
        return out

    def _on_edited(self, change: ProjectChange) -> None:
        kinds = set(change.kinds)
        if "panel" in kinds or "asset" in kinds:
            kinds |= {"page"}  # page thumbnails show panel images
        if "book" in kinds:
            kinds |= {"page"}
        self.refresh(frozenset(kinds))

    def _clicked(self, kind: str, item: QListWidgetItem | None) -> None:
        if self._syncing or item is None:
            return
        self._session.select(kind, item.data(Qt.ItemDataRole.UserRole))

    def _on_selection(self, kind: str, item_id: str) -> None:
        was = self._syncing
        self._syncing = True
        try:
            for k, section in self.sections.items():
                lst = section.list
                if k != kind:
                    lst.clearSelection()
                    continue
                for i in range(lst.count()):
                    if lst.item(i).data(Qt.ItemDataRole.UserRole) == item_id:
                        lst.setCurrentRow(i)
        finally:
            self._syncing = was
