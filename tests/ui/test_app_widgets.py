"""Settings, the model dialog, the queue dock (driven by a scripted fake queue), the panel text warning, and what the
main window gives its action helpers."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDialogButtonBox

from app.project_model import Character
from app.settings import Settings
from ui.export_dialog import ExportDialog
from ui.main_window import MainWindow
from ui.model_dialog import ModelDialog
from ui.panel_editor import missing_subjects
from ui.queue_dock import ANCHORS_TIP, TWO_PASS_TIP, QueueDock, format_eta
from ui.window_host import WindowHost


def test_settings_round_trip_and_bad_values_fall_back(tmp_path):
    path = tmp_path / "s.ini"
    s = Settings(path)
    seen = []
    s.steps_changed.connect(seen.append)
    s.steps = 12
    s.steps = 12
    s.add_recent_project(tmp_path / "a")
    s.add_recent_project(tmp_path / "b")
    s.add_recent_project(tmp_path / "a")
    s.window_geometry = b"\x00\x01geo"
    s.sync()
    assert seen == [12]
    again = Settings(path)
    assert (again.steps, again.window_geometry) == (12, b"\x00\x01geo")
    assert again.recent_projects == [str(tmp_path / "a"), str(tmp_path / "b")]
    path.write_text("[General]\nsteps=banana\ndevice=quantum\ncpu_offload=true\n")
    broken = Settings(path)
    assert (broken.steps, broken.device, broken.cpu_offload) == (30, "auto", True)
    try:
        broken.device = "quantum"
    except ValueError as exc:
        assert "'quantum' is not a valid value for 'device' (one of auto, cpu, cuda, mps)" in str(exc)
    else:
        raise AssertionError("a bad device was accepted")


def test_model_dialog_refuses_a_folder_that_is_not_a_model_and_remembers_a_good_choice(qtbot, tmp_path):
    s = Settings(tmp_path / "s.ini")
    d = ModelDialog(s)
    qtbot.addWidget(d)
    d.radio_folder.setChecked(True)
    qtbot.keyClicks(d.folder_edit, str(tmp_path))
    ok = d.buttons.button(QDialogButtonBox.StandardButton.Ok)
    qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
    assert d.isVisible() is False or d.result() != d.DialogCode.Accepted
    assert "has no model_index.json" in d.error_label.text()
    assert s.model_source == ""
    (tmp_path / "model_index.json").write_text("{}")
    d.offload_check.setChecked(True)
    d.tiling_check.setChecked(True)
    d.steps_spin.setValue(7)
    qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
    assert d.result() == d.DialogCode.Accepted
    again = Settings(tmp_path / "s.ini")
    assert (again.model_source, again.cpu_offload, again.vae_tiling, again.steps) == (str(tmp_path), True, True, 7)
    d2 = ModelDialog(again)
    qtbot.addWidget(d2)
    assert d2.radio_folder.isChecked() and d2.folder_edit.text() == str(tmp_path) and d2.tiling_check.isChecked()


def test_model_dialog_checks_hub_ids_before_any_network(qtbot, tmp_path):
    d = ModelDialog(Settings(tmp_path / "s.ini"))
    qtbot.addWidget(d)
    d.radio_hub.setChecked(True)
    qtbot.keyClicks(d.hub_edit, "not a hub id")
    qtbot.mouseClick(d.hub_check, Qt.MouseButton.LeftButton)
    assert "is not a Hugging Face model id" in d.error_label.text()
    assert "Free disk in" in d.hub_info.text()


def test_model_dialog_offers_the_apple_gpu_on_macos_only(qtbot, tmp_path, monkeypatch):
    import ui.model_dialog

    for platform, setting, offered in (("linux", "auto", False), ("darwin", "auto", True), ("win32", "mps", True)):
        monkeypatch.setattr(ui.model_dialog.sys, "platform", platform)
        s = Settings(tmp_path / f"{platform}.ini")
        s.device = setting
        d = ModelDialog(s)
        qtbot.addWidget(d)
        assert (d.device_combo.findData("mps") >= 0) == offered  # a saved "mps" stays visible, to be changed
        assert d.device_combo.currentData() == setting


class FakeQueue(QObject):
    job_added = Signal(str)
    job_started = Signal(str)
    job_progress = Signal(str, int, int, bytes)
    job_phase = Signal(str, str)
    job_finished = Signal(str, list)
    job_failed = Signal(str, str, str, str)
    model_status = Signal(str)

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []
        self.jobs: dict = {}

    def job(self, job_id):
        return self.jobs.get(job_id)

    def cancel_now(self):
        self.calls.append("cancel_now")

    def cancel_after_current(self):
        self.calls.append("cancel_after_current")

    def clear(self):
        self.calls.append("clear")


def test_queue_dock_shows_progress_cancel_and_errors_with_a_fix(qtbot):
    dock = QueueDock()
    qtbot.addWidget(dock)
    q = FakeQueue()
    q.jobs = {"j1": SimpleNamespace(kind="plain", spec=SimpleNamespace(consistory=None)),
              "j2": SimpleNamespace(kind="consistent", spec=SimpleNamespace(consistory=object()))}
    dock.set_queue(q)
    dock.set_title("j1", "Panel 1")
    q.job_added.emit("j1")
    q.job_added.emit("j2")
    assert not dock.cancel_now_button.isEnabled() and dock.clear_button.isEnabled()
    q.job_started.emit("j1")
    q.job_progress.emit("j1", 1, 10, b"")
    q.job_progress.emit("j1", 2, 10, b"")
    row = dock.row("j1")
    assert row.title_label.text() == "Panel 1" and row.progress.value() == 2
    assert row.progress.format().startswith("step 2 of 10 · about ") and row.progress.toolTip() == ""
    assert dock.cancel_now_button.isEnabled() and dock.cancel_after_button.isEnabled()
    for button in (dock.cancel_now_button, dock.cancel_after_button, dock.clear_button):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert q.calls == ["cancel_now", "cancel_after_current", "clear"]
    q.job_failed.emit("j1", "cancelled", "Cancelled.", "")
    assert dock.job_state("j1") == "cancelled" and dock.error_box.isHidden()
    q.job_started.emit("j2")
    q.job_progress.emit("j2", 4, 328, b"")  # a ConsiStory job counts the steps of both passes
    assert dock.row("j2").progress.format() == "denoising step 4 of 328 · 1 %"
    assert dock.row("j2").progress.toolTip() == TWO_PASS_TIP and "two passes" in TWO_PASS_TIP
    q.job_failed.emit("j2", "out_of_memory", "The GPU ran out of memory.", "Turn on CPU offload.")
    assert dock.job_state("j2") == "failed" and not dock.error_box.isHidden()
    assert "ran out of memory" in dock.error_label.text() and dock.fix_button.text() == "Use less memory"
    with qtbot.waitSignal(dock.fix_requested) as fix:
        qtbot.mouseClick(dock.fix_button, Qt.MouseButton.LeftButton)
    assert fix.args == ["use_less_memory"]
    q.job_failed.emit("j3", "model", "The model could not be loaded.", "Choose another model.")
    assert dock.fix_button.text() == "Choose a model…"
    assert (format_eta(5), format_eta(125), format_eta(7300)) == ("5 s", "2 min 05 s", "2 h 01 min")


def test_queue_dock_names_the_anchors_phase_and_starts_the_bar_again_for_the_panel(qtbot):
    dock = QueueDock()
    qtbot.addWidget(dock)
    q = FakeQueue()
    q.jobs = {"c1": SimpleNamespace(kind="character", spec=None)}
    dock.set_queue(q)
    q.job_added.emit("c1")
    q.job_started.emit("c1")
    q.job_phase.emit("c1", "anchors")
    q.job_progress.emit("c1", 1, 40, b"")
    q.job_progress.emit("c1", 4, 40, b"")
    bar = dock.row("c1").progress
    assert bar.format().startswith("anchors: step 4 of 40 · 10 % · about ") and bar.toolTip() == ANCHORS_TIP
    assert (bar.value(), bar.maximum()) == (4, 40)
    q.job_phase.emit("c1", "denoise")
    q.job_progress.emit("c1", 1, 328, b"")   # one step of the new phase: no ETA yet (the anchors' pace is not its)
    assert bar.format() == "denoising step 1 of 328 · 0 %" and bar.toolTip() == TWO_PASS_TIP
    assert (bar.value(), bar.maximum()) == (1, 328)
    dock.set_queue(None)   # every connection, the phase's included, is dropped
    q.job_phase.emit("c1", "anchors")
    q.job_progress.emit("c1", 2, 40, b"")
    assert bar.format() == "denoising step 1 of 328 · 0 %"


class DroppingQueue(FakeQueue):
    """Like ``JobQueue.clear``: the waiting jobs are reported cancelled; the running one goes on."""

    def __init__(self, pending):
        super().__init__()
        self.pending = list(pending)

    def clear(self):
        super().clear()
        dropped, self.pending = self.pending, []
        for job_id in dropped:
            self.job_failed.emit(job_id, "cancelled", "Removed from the queue before it started.", "")


def test_clear_queue_drops_waiting_jobs_and_ended_rows_but_keeps_the_running_job(qtbot):
    dock = QueueDock()
    qtbot.addWidget(dock)
    q = DroppingQueue(pending=["w1", "w2"])
    dock.set_queue(q)
    for job_id in ("d1", "f1", "r1", "w1", "w2"):
        q.job_added.emit(job_id)
    q.job_started.emit("d1")
    q.job_finished.emit("d1", ["asset"])
    q.job_started.emit("f1")
    q.job_failed.emit("f1", "out_of_memory", "The GPU ran out of memory.", "")
    q.job_started.emit("r1")
    q.job_progress.emit("r1", 3, 10, b"")
    assert dock.list.count() == 5 and not dock.error_box.isHidden()
    qtbot.mouseClick(dock.clear_button, Qt.MouseButton.LeftButton)
    assert q.calls == ["clear"]
    assert dock.list.count() == 1 and dock.list.itemWidget(dock.list.item(0)).job_id == "r1"
    assert dock.job_state("r1") == "running" and dock.row("r1").progress.value() == 3
    assert dock.error_box.isHidden()
    assert not dock.clear_button.isEnabled() and dock.cancel_now_button.isEnabled()
    q.job_progress.emit("r1", 4, 10, b"")
    q.job_finished.emit("r1", ["asset"])
    assert dock.row("r1").progress.format().startswith("done") and dock.clear_button.isEnabled()
    qtbot.mouseClick(dock.clear_button, Qt.MouseButton.LeftButton)
    assert dock.list.count() == 0 and not dock.clear_button.isEnabled()
    q.job_added.emit("n1")  # the dock goes on with new jobs after a clear
    assert dock.job_state("n1") == "queued" and dock.clear_button.isEnabled()


def test_export_dialog_offers_a_dpi_for_raster_formats_only(qtbot, tmp_path):
    d = ExportDialog(tmp_path / "book.pdf")
    qtbot.addWidget(d)
    assert d.fmt() == "pdf" and not d.dpi_spin.isEnabled()  # as opened, before any change of format
    d.format_combo.setCurrentIndex(d.format_combo.findData("png"))
    assert d.dpi_spin.isEnabled() and d.out_path() == tmp_path / "book.png"
    d.format_combo.setCurrentIndex(d.format_combo.findData("screen-pdf"))
    assert not d.dpi_spin.isEnabled() and d.out_path() == tmp_path / "book.pdf"
    d.path_edit.setText("  ")
    d.accept()
    assert d.error_label.text() == "Say where to write the book." and d.result() != d.DialogCode.Accepted


def test_missing_subject_words_are_named():
    fox = Character(id="f", name="Pip", description="a fox", subjects=("fox",))
    bear = Character(id="b", name="Bo", description="a bear", subjects=("bear",))
    assert missing_subjects("The Fox reads.", [fox, bear]) == ["Bo (“bear”)"]
    assert missing_subjects("foxes run", [fox]) == ["Pip (“fox”)"]


def test_main_window_has_what_its_action_helpers_use(qtbot, tmp_path):
    """The file and library helpers are typed against ``WindowHost``, not the window: a renamed window member would
    only fail on the helper's (error) path, so check every member the protocol names, and the signatures of the ones
    the window defines itself."""
    settings = Settings(tmp_path / "settings.ini")
    settings.model_source, settings.first_run_done = "tiny", True
    win = MainWindow(settings)
    qtbot.addWidget(win)
    methods = [n for n, v in vars(WindowHost).items() if callable(v) and not n.startswith("_")]
    assert {"show_error", "show_info", "show_status_error", "statusBar", "cursor"} <= set(methods)
    for name in list(WindowHost.__annotations__) + methods:
        assert hasattr(win, name), f"MainWindow lacks {name}, which ui.window_host.WindowHost names"
    for name in methods:
        if name in vars(MainWindow):
            want = list(inspect.signature(getattr(WindowHost, name)).parameters)
            assert list(inspect.signature(getattr(MainWindow, name)).parameters) == want, name
    assert win.files.w is win and win.files.parent() is win
    win.files.library_action("no such action", "")
    assert win.files.library.w is win
    assert win.last_message == "Unknown library action 'no such action'."
    win.confirm_close_without_asking()
