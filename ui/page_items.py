"""Graphics items of the page editor (scene units are points of the page's MediaBox, origin top-left).

- ``PageItem`` draws the composed page with ``ui.page_painter`` (with its trim and safe-area guides) and the
  bleed edge (red dashes).
- ``SlotItem`` is one layout slot: click selects it, drop a panel on it (mime ``application/x-consistory-panel``
  or text ``panel:<id>``), drag to pan the image inside it, wheel to zoom.
- ``BalloonItem`` is a balloon's body box (drag to move) with a ``TailHandle`` (drag to move the tail tip).
Items never edit the project; they call the editor's callbacks, which push undoable commands.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import (QGraphicsEllipseItem, QGraphicsItem, QGraphicsRectItem,
                               QGraphicsSceneDragDropEvent, QGraphicsSceneMouseEvent, QGraphicsSceneWheelEvent)

__all__ = ["PageItem", "SlotItem", "BalloonItem", "TailHandle", "PANEL_MIME", "qrect"]

PANEL_MIME = "application/x-consistory-panel"


def qrect(r) -> QRectF:
    return QRectF(r.x, r.y, r.w, r.h)


class PageItem(QGraphicsItem):
    def __init__(self, composition, show_guides: bool = True) -> None:
        super().__init__()
        self.composition = composition
        self.show_guides = show_guides
        self.setZValue(0)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        g = self.composition.geometry
        return QRectF(0, 0, g.media_w, g.media_h)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        from ui.page_painter import paint_page

        paint_page(painter, self.composition, 1.0, guides=self.show_guides)
        if self.show_guides:  # the renderer draws trim and safe area; the bleed edge is the MediaBox
            g = self.composition.geometry
            painter.save()
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(200, 0, 0), 0, Qt.PenStyle.DashLine))
            painter.drawRect(QRectF(0, 0, g.media_w, g.media_h))
            painter.restore()


class SlotItem(QGraphicsRectItem):
    def __init__(self, index: int, rect: QRectF, on_select: Callable[[int], None],
                 on_drop: Callable[[int, str], None], on_pan: Callable[[int, float, float], None],
                 on_zoom: Callable[[int, float], None]) -> None:
        super().__init__(rect)
        self.index = index
        self._on_select, self._on_drop, self._on_pan, self._on_zoom = on_select, on_drop, on_pan, on_zoom
        self._last: QPointF | None = None
        self.setAcceptDrops(True)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.set_selected(False)
        self.setToolTip("Drop a panel here from the project list, or pick one on the right. "
                        "Drag to move the picture inside the slot, scroll to zoom.")

    def set_selected(self, on: bool) -> None:
        self.setPen(QPen(QColor(255, 140, 0), 3) if on else QPen(Qt.PenStyle.NoPen))
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt API
        self._on_select(self.index)
        self._last = event.scenePos()
        event.accept()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._last is None:
            return
        delta = event.scenePos() - self._last
        self._last = event.scenePos()
        r = self.rect()
        self._on_pan(self.index, -delta.x() / max(r.width(), 1), -delta.y() / max(r.height(), 1))

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt API
        self._last = None

    def wheelEvent(self, event: QGraphicsSceneWheelEvent) -> None:  # noqa: N802 - Qt API
        self._on_zoom(self.index, 1.1 if event.delta() > 0 else 1 / 1.1)
        event.accept()

    def _panel_of(self, event: QGraphicsSceneDragDropEvent) -> str | None:
        mime = event.mimeData()
        if mime.hasFormat(PANEL_MIME):
            return bytes(mime.data(PANEL_MIME).data()).decode()
        if mime.hasText() and mime.text().startswith("panel:"):
            return mime.text()[len("panel:"):]
        return None

    def dragEnterEvent(self, event: QGraphicsSceneDragDropEvent) -> None:  # noqa: N802 - Qt API
        event.setAccepted(self._panel_of(event) is not None)
        if event.isAccepted():
            self.setBrush(QBrush(QColor(255, 140, 0, 60)))

    def dragLeaveEvent(self, event: QGraphicsSceneDragDropEvent) -> None:  # noqa: N802 - Qt API
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))

    def dropEvent(self, event: QGraphicsSceneDragDropEvent) -> None:  # noqa: N802 - Qt API
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        panel_id = self._panel_of(event)
        if panel_id:
            self._on_drop(self.index, panel_id)
            event.acceptProposedAction()


class TailHandle(QGraphicsEllipseItem):
    R = 5.0

    def __init__(self, parent: "BalloonItem") -> None:
        super().__init__(-self.R, -self.R, 2 * self.R, 2 * self.R, parent)
        self.setBrush(QBrush(QColor(255, 140, 0)))
        self.setPen(QPen(QColor(0, 0, 0), 0))
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setToolTip("Drag to point the balloon's tail at the speaker.")
        self.setCursor(Qt.CursorShape.CrossCursor)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt API
        super().mouseReleaseEvent(event)
        self.parentItem().tail_moved(self.scenePos())


class BalloonItem(QGraphicsRectItem):
    def __init__(self, balloon_id: str, body: QRectF, tail: QPointF | None,
                 on_select: Callable[[str], None], on_move: Callable[[str, QPointF], None],
                 on_tail: Callable[[str, QPointF], None]) -> None:
        super().__init__(QRectF(0, 0, body.width(), body.height()))
        self.balloon_id = balloon_id
        self._on_select, self._on_move, self._on_tail = on_select, on_move, on_tail
        self.setPos(body.topLeft())
        self.setZValue(3)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setCursor(Qt.CursorShape.SizeAllCursor)
        self.setToolTip("Drag to move; edit its text on the right.")
        self.set_selected(False)
        self.tail = None
        if tail is not None:
            self.tail = TailHandle(self)
            self.tail.setPos(tail - body.topLeft())

    def set_selected(self, on: bool) -> None:
        self.setPen(QPen(QColor(255, 140, 0), 0, Qt.PenStyle.DashLine) if on else QPen(Qt.PenStyle.NoPen))
        self.setBrush(QBrush(QColor(0, 0, 0, 1)))  # nearly invisible, but clickable everywhere inside

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt API
        self._start = self.pos()
        self._on_select(self.balloon_id)
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt API
        super().mouseReleaseEvent(event)
        if self.pos() != getattr(self, "_start", self.pos()):
            self._on_move(self.balloon_id, self.pos())

    def tail_moved(self, scene_pos: QPointF) -> None:
        self._on_tail(self.balloon_id, scene_pos)
