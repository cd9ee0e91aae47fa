"""The GUI process collects cyclic garbage on the GUI thread only (``ui.gui_gc``)."""

from __future__ import annotations

import gc
import threading

from ui.gui_gc import GuiThreadCollector


class _Cycle:
    """An object in a reference cycle that records the thread its finaliser ran on."""

    def __init__(self, record: list) -> None:
        self.me = self
        self.record = record

    def __del__(self) -> None:
        self.record.append(threading.get_ident())


def _allocate_on_a_worker() -> list:
    """What model loading does to the collector's counts: many new container objects, on another thread, that stay
    alive (as a loaded model's do)."""
    kept: list = []
    t = threading.Thread(target=lambda: kept.extend([i] for i in range(20_000)))
    t.start()
    t.join()
    return kept


def test_automatic_collection_would_free_gui_garbage_on_a_worker():
    """The hazard itself (the control for the test below): with the automatic collector on, a worker that
    allocates frees the GUI thread's cyclic garbage on its own thread."""
    record: list[int] = []
    was_enabled = gc.isenabled()
    gc.collect()
    gc.enable()
    try:
        _Cycle(record)
        kept = _allocate_on_a_worker()
    finally:
        if not was_enabled:
            gc.disable()
    del kept
    gc.collect()
    assert record and record[0] != threading.get_ident()


def test_cyclic_garbage_is_freed_on_the_gui_thread(qtbot, gui_thread_collector):
    assert gui_thread_collector.active and not gc.isenabled()
    record: list[int] = []
    gc.collect()
    _Cycle(record)
    kept = _allocate_on_a_worker()
    assert record == []                      # the worker's allocations collected nothing
    before = sum(gui_thread_collector.collections)
    qtbot.waitUntil(lambda: bool(record), timeout=3000)   # the timer's next tick, on this thread
    assert record == [threading.get_ident()]
    assert sum(gui_thread_collector.collections) > before
    del kept


def test_due_generation_follows_the_thresholds(qapp):
    old = gc.get_threshold()
    gc.set_threshold(50, 3, 2)
    try:
        collector = GuiThreadCollector(qapp, interval_ms=60_000)   # driven by hand here
        try:
            gc.collect()
            assert collector.due_generation() is None
            keep = [[i] for i in range(200)]
            assert collector.due_generation() == 0
            for _ in range(4):                   # generation 1's count passes its threshold of 3
                gc.collect(0)
                keep += [[i] for i in range(200)]
            assert collector.due_generation() == 1
            collector.check()
            assert collector.collections[1] == 1 and gc.get_count()[1] == 0
            del keep
        finally:
            collector.stop()
        assert not gc.isenabled()                # the session's collector had it off: stop() leaves it so
    finally:
        gc.set_threshold(*old)


def test_stop_gives_the_automatic_collector_back(qapp):
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        collector = GuiThreadCollector(qapp)
        assert not gc.isenabled() and collector.active
        collector.stop()
        assert gc.isenabled() and not collector.active
    finally:
        if not was_enabled:
            gc.disable()
