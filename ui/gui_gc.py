"""Python's cyclic garbage collector, run on the GUI thread only.

Left automatic, CPython's collector runs in whichever thread happens to allocate when a generation's count passes
its threshold. In this app that is often the generation worker (model loading allocates a great deal), and a
collection there may free a closed dialog or a view left in a reference cycle: a Qt widget destroyed outside the
GUI thread crashes the process. ``GuiThreadCollector`` turns the automatic collector off for the process and
collects from a timer on the GUI thread instead, with CPython's own thresholds (generation 0 when its count passes
the first threshold, an older generation when its count passes its own), so garbage is freed as often as before,
only never on a worker thread.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer, Slot

__all__ = ["GuiThreadCollector"]


class GuiThreadCollector(QObject):
    """Create on the GUI thread (the app holds one for its whole run); ``stop()`` gives the collector back."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        self._thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]   # how many collections of each generation this object ran
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def due_generation(self) -> int | None:
        """The generation the automatic collector would collect now, or ``None``: nothing until generation 0's
        count passes its threshold, then the oldest generation whose count has passed its own (a threshold of 0
        turns that generation's automatic collection off)."""
        counts, thresholds = gc.get_count(), self._thresholds
        if not thresholds[0] or counts[0] <= thresholds[0]:
            return None
        for generation in (2, 1):
            if thresholds[generation] and counts[generation] > thresholds[generation]:
                return generation
        return 0

    @Slot()
    def check(self) -> None:
        generation = self.due_generation()
        if generation is not None:
            gc.collect(generation)
            self.collections[generation] += 1

    def stop(self) -> None:
        """Stop the timer, collect once here, and turn the automatic collector back on if it was on before."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
