"""Real-window screenshots under Xvfb of each main screen: project browser + panel editor (and its mask overlay),
character editor with a real character sheet (tiny model) and with the "made with another model" notice, the
library dialog, page editor, queue with a job running, model dialog (tiny model: 64x64, 3 steps). PNGs go to ``$CS_SCREENSHOT_DIR`` (default: the test's tmp).

The window needs the xcb platform, so the screens are taken by this file run as a script in a child process with
its own X server; the test checks every PNG exists, has the window's size and is not blank.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCREENS = ("browser_panel_editor", "panel_mask_overlay", "character_editor", "character_other_model",
           "library_dialog", "page_editor", "queue_running", "model_dialog")
ROOT = Path(__file__).resolve().parents[2]


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.mark.xvfb
@pytest.mark.slow
def test_screenshots_of_every_main_screen(tmp_path):
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    out = Path(os.environ.get("CS_SCREENSHOT_DIR") or tmp_path / "screens")
    out.mkdir(parents=True, exist_ok=True)
    display = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if Path(f"/tmp/.X11-unix/X{display}").exists():
                break
            time.sleep(0.05)
        env = dict(os.environ, DISPLAY=f":{display}", QT_QPA_PLATFORM="xcb",
                   CONSISTORY_STUDIO_HOME=str(tmp_path / "home"))
        run = subprocess.run([sys.executable, __file__, str(out), str(tmp_path / "work")], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    from PIL import Image

    for name in SCREENS:
        path = out / f"{name}.png"
        assert path.is_file(), f"{name}.png was not written"
        with Image.open(path) as im:
            assert im.width >= 400 and im.height >= 300
            colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is None or len(colours) > 50, f"{name}.png looks blank"


# ------------------------------------------------------------------------------------------------ child process
def _wait(signal, timeout_s: float = 120.0, until=None):
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    got: list = []

    def on(*args):
        if until is None or until(*args):
            got.append(args)
            loop.quit()
    signal.connect(on)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(on)
    if not got:
        raise TimeoutError(f"no {signal} within {timeout_s} s")
    return got[0]


def _settle(app, ms: int = 300) -> None:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _screens(out: Path, work: Path) -> None:
    from PySide6.QtWidgets import QApplication

    from app.settings import Settings
    from ui.app_main import create_window
    from ui.library_dialog import LibraryDialog
    from ui.model_dialog import ModelDialog

    from app.character_library import CharacterLibrary

    app = QApplication([sys.argv[0]])
    settings = Settings(work / "settings.ini")
    settings.model_source, settings.steps, settings.max_size = "tiny", 3, 64
    settings.first_run_done = True
    folder = work / "sample"
    shutil.copytree(ROOT / "projects" / "sample-storybook", folder)
    w = create_window([str(folder)], settings=settings)
    w.resize(1440, 900)
    w.show()
    _settle(app, 800)
    queue = w.generation.queue
    project = w.session.project
    for character in project.characters:
        w.generation.generate_anchors(character.id)
        _wait(w.generation.anchors_ready)
    project = w.session.project
    for panel in project.panels[:3]:
        w.generation.generate_panel(panel.id)
        _wait(queue.job_finished)

    with_character = next((p for p in project.panels[:3] if p.character_ids), project.panels[0])
    w.session.select("panel", with_character.id)
    _settle(app)
    w.grab().save(str(out / "browser_panel_editor.png"))
    w.panel_editor.mask_toggle.setChecked(True)
    _settle(app)
    w.grab().save(str(out / "panel_mask_overlay.png"))
    w.panel_editor.mask_toggle.setChecked(False)
    w.session.select("character", project.characters[0].id)
    _settle(app)
    w.grab().save(str(out / "character_editor.png"))
    w.character_editor.current_model = lambda: "sdxl-base-1.0"  # as if another model were chosen
    w.character_editor.refresh_anchors()
    _settle(app)
    w.grab().save(str(out / "character_other_model.png"))
    w.character_editor.current_model = w.generation.current_model_source
    w.character_editor.refresh_anchors()
    library = LibraryDialog(CharacterLibrary(), w)
    library.show()
    if library.list.count():
        library.list.item(0).setSelected(True)
    _settle(app, 500)
    library.grab().save(str(out / "library_dialog.png"))
    library.reject()
    page = next((p for p in project.pages if len(p.slots) > 1), project.pages[0])
    w.session.select("page", page.id)
    _settle(app)
    w.grab().save(str(out / "page_editor.png"))

    w.session.select("panel", project.panels[3].id)
    grabbed: list = []

    def grab_once(_job, step, _total, _png):  # straight from the progress signal: the job is still running
        if step >= 2 and not grabbed:
            grabbed.append(w.grab())
    queue.job_progress.connect(grab_once)
    w.generation.generate_panel(project.panels[3].id)
    w.generation.generate_panel(project.panels[4].id)
    _wait(queue.job_progress, until=lambda _j, step, _t, _p: step >= 2)
    grabbed[0].save(str(out / "queue_running.png"))
    queue.cancel_now()
    _wait(queue.job_failed)

    dialog = ModelDialog(settings, w)
    dialog.show()
    _settle(app, 500)
    dialog.grab().save(str(out / "model_dialog.png"))
    dialog.reject()
    w.confirm_close_without_asking()
    app.processEvents()


if __name__ == "__main__":
    _screens(Path(sys.argv[1]), Path(sys.argv[2]))
