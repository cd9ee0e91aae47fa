"""Open the main window: ``run(argv) -> int`` (the exit code of the Qt event loop).

The window is shown before anything heavy loads: torch and diffusers are imported by the worker thread with the
first job. ``argv`` may name a project folder to open; otherwise the first run opens (a copy of) the sample
project and later runs reopen the most recent project.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["run", "create_window"]


def create_window(argv: list[str] | None = None, settings=None, queue=None):
    """Build (not show) the main window; opens ``argv[0]`` if it is a project folder, else the start project."""
    from app.settings import Settings
    from ui.main_window import MainWindow

    window = MainWindow(settings if settings is not None else Settings(), queue)
    folder = next((a for a in (argv or []) if not a.startswith("-")), None)
    if folder and Path(folder).is_dir():
        window.files.open_folder(folder)
    else:
        window.files.start()
    return window


def run(argv: list[str]) -> int:
    from PySide6.QtWidgets import QApplication

    from ui.gui_gc import GuiThreadCollector

    qapp = QApplication.instance() or QApplication(sys.argv[:1] + list(argv))
    qapp.setApplicationName("Consistory Studio")
    qapp.setOrganizationName("ConsistoryStudio")
    collector = GuiThreadCollector(qapp)   # cyclic garbage is freed on this thread only, never on the worker's
    window = create_window(argv)
    window.show()
    code = qapp.exec()
    window.generation.shutdown()
    collector.stop()
    return code
