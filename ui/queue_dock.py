"""Generation queue dock: every job with its state, a progress bar with step count and ETA, a live preview of the
step image, "cancel now", "cancel after current", "clear queue", and errors in plain words with a suggested fix.
"Clear queue" drops the waiting jobs and takes the ended ones (done, failed, cancelled) off the list; a running job
goes on and keeps its row.

Binds to an ``app.job_queue.JobQueue``-like object through its signals only (``job_added``, ``job_started``,
``job_progress``, ``job_finished``, ``job_failed``, ``model_status``, and ``job_phase`` where the queue has it: a
character's anchors are counted as a phase of their own) and calls ``cancel_now()``,
``cancel_after_current()``, ``clear()``. A failure of kind "cancelled" is shown as "Cancelled", never as an error.
The fix buttons emit ``fix_requested(action)`` with action "open_model_dialog" or "use_less_memory".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QDockWidget, QFrame, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QProgressBar, QPushButton, QVBoxLayout, QWidget)

__all__ = ["QueueDock", "JobRow", "format_eta", "format_progress", "TWO_PASS_TIP", "ANCHORS_TIP"]

_ENDED = ("done", "failed", "cancelled")

TWO_PASS_TIP = ("Consistent pictures are drawn in two passes: the first finds where each character is and how its "
                "anchors look, the second draws the final pictures from that point on. The count is every "
                "denoising step of both passes together, so it is larger than the step setting.")
ANCHORS_TIP = ("The character's anchor pictures are drawn first and kept for its later panels; the panels follow, "
               "and the bar starts again for them.")


def format_progress(step: int, total: int, two_pass: bool, eta: str = "", phase: str = "denoise") -> str:
    """Progress-bar text: "step 4 of 20" for one pass; "denoising step 4 of 328 · 1 %" when two passes are
    counted together (``total`` is then not the step setting, so the percentage says more); "anchors: step 4 of
    40 · 10 %" while a character's anchors are drawn, before its panels."""
    total = max(1, total)
    if phase == "anchors":
        text = f"anchors: step {step} of {total} · {100 * step // total} %"
    elif two_pass:
        text = f"denoising step {step} of {total} · {100 * step // total} %"
    else:
        text = f"step {step} of {total}"
    return f"{text} · about {eta} left" if eta else text


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class _JobState:
    title: str
    state: str = "queued"
    started: float = 0.0
    step: int = 0
    total: int = 0
    step_times: list[float] = field(default_factory=list)
    phase: str = "denoise"


class JobRow(QFrame):
    """One job: title, state, progress bar (``step/total · ETA``)."""

    def __init__(self, job_id: str, title: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.setObjectName(f"job_row_{job_id}")
        self.title_label = QLabel(title)
        self.title_label.setStyleSheet("font-weight: bold;")
        self.state_label = QLabel("Waiting")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("waiting")
        top = QHBoxLayout()
        top.addWidget(self.title_label, 1)
        top.addWidget(self.state_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.progress)


class QueueDock(QDockWidget):
    fix_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Generation queue", parent)
        self.setObjectName("queue_dock")
        self._queue: QObject | None = None
        self._connections: list = []
        self._jobs: dict[str, _JobState] = {}
        self._rows: dict[str, tuple[QListWidgetItem, JobRow]] = {}
        self._titles: dict[str, str] = {}
        self._running: str | None = None

        body = QWidget()
        self.status_label = QLabel("Model: not loaded yet (it loads with the first job).")
        self.status_label.setObjectName("model_status")
        self.status_label.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("job_list")
        self.preview = QLabel("The picture being drawn appears here.")
        self.preview.setObjectName("job_preview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(160, 160)
        self.preview.setFrameShape(QFrame.Shape.StyledPanel)
        self.preview.setWordWrap(True)

        self.cancel_now_button = QPushButton("Cancel now")
        self.cancel_now_button.setObjectName("cancel_now")
        self.cancel_now_button.setToolTip("Stop the running job at the next step; nothing half-done is kept.")
        self.cancel_after_button = QPushButton("Cancel after current")
        self.cancel_after_button.setObjectName("cancel_after_current")
        self.cancel_after_button.setToolTip("Let the running job finish, then drop the waiting ones.")
        self.clear_button = QPushButton("Clear queue")
        self.clear_button.setObjectName("clear_queue")
        self.clear_button.setToolTip("Drop every waiting job and take the ended ones off the list; a running job "
                                     "goes on.")
        self.clear_button.clicked.connect(self._clear)
        buttons = QHBoxLayout()
        for b in (self.cancel_now_button, self.cancel_after_button, self.clear_button):
            buttons.addWidget(b)

        self.error_box = QFrame()
        self.error_box.setObjectName("job_error")
        self.error_box.setStyleSheet("QFrame#job_error { background: #fdecea; border: 1px solid #e0a0a0; }")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.fix_button = QPushButton()
        self.fix_button.clicked.connect(self._on_fix)
        dismiss = QPushButton("Dismiss")
        dismiss.clicked.connect(self.error_box.hide)
        err_layout = QVBoxLayout(self.error_box)
        err_layout.addWidget(self.error_label)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.fix_button)
        row.addWidget(dismiss)
        err_layout.addLayout(row)
        self.error_box.hide()
        self._fix_action = ""

        layout = QVBoxLayout(body)
        layout.addWidget(self.status_label)
        layout.addWidget(self.preview)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.error_box)
        layout.addLayout(buttons)
        self.setWidget(body)
        self._update_buttons()

    # -- binding ----------------------------------------------------------------------------------------------
    def set_queue(self, queue: QObject | None) -> None:
        for sig, slot in self._connections:
            sig.disconnect(slot)
        self._connections = []
        self._queue = queue
        if queue is None:
            return
        for sig, slot in ((queue.job_added, self._on_added), (queue.job_started, self._on_started),
                          (queue.job_progress, self._on_progress), (queue.job_finished, self._on_finished),
                          (queue.job_failed, self._on_failed), (queue.model_status, self._on_model_status)):
            sig.connect(slot)
            self._connections.append((sig, slot))
        if hasattr(queue, "job_phase"):
            queue.job_phase.connect(self._on_phase)
            self._connections.append((queue.job_phase, self._on_phase))
        self.cancel_now_button.clicked.connect(queue.cancel_now)
        self.cancel_after_button.clicked.connect(queue.cancel_after_current)

    def set_title(self, job_id: str, title: str) -> None:
        """Name a job before (or after) it is announced; rows show it."""
        self._titles[job_id] = title
        if job_id in self._rows:
            self._rows[job_id][1].title_label.setText(title)

    def job_state(self, job_id: str) -> str:
        return self._jobs[job_id].state

    def row(self, job_id: str) -> JobRow:
        return self._rows[job_id][1]

    @property
    def running_job(self) -> str | None:
        return self._running

    def has_active_jobs(self) -> bool:
        return any(j.state in ("queued", "running") for j in self._jobs.values())

    # -- slots (GUI thread, queued from the worker) ------------------------------------------------------------
    def _on_added(self, job_id: str) -> None:
        title = self._titles.get(job_id, f"Job {job_id}")
        self._jobs[job_id] = _JobState(title)
        row = JobRow(job_id, title)
        item = QListWidgetItem()
        item.setSizeHint(row.sizeHint())
        self.list.addItem(item)
        self.list.setItemWidget(item, row)
        self._rows[job_id] = (item, row)
        self._update_buttons()

    def _on_started(self, job_id: str) -> None:
        if job_id not in self._jobs:
            self._on_added(job_id)
        job = self._jobs[job_id]
        job.state, job.started = "running", time.monotonic()
        self._running = job_id
        row = self.row(job_id)
        row.state_label.setText("Running")
        row.progress.setRange(0, 0)  # busy until the first step (model load)
        row.progress.setFormat("starting…")
        self.list.scrollToItem(self._rows[job_id][0])
        self._update_buttons()

    def _on_phase(self, job_id: str, phase: str) -> None:
        """A new phase starts its own step count: the ETA is measured again from its steps."""
        job = self._jobs.get(job_id)
        if job is not None:
            job.phase = phase
            job.step_times.clear()

    def _on_progress(self, job_id: str, step: int, total: int, preview_png: bytes) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        now = time.monotonic()
        job.step_times.append(now)
        job.step, job.total = step, total
        row = self.row(job_id)
        row.progress.setRange(0, max(1, total))
        row.progress.setValue(step)
        eta = ""
        if len(job.step_times) >= 2 and step > 0:
            per_step = (job.step_times[-1] - job.step_times[0]) / (len(job.step_times) - 1)
            eta = format_eta(per_step * (total - step))
        two_pass = self._two_pass(job_id)
        row.progress.setFormat(format_progress(step, total, two_pass, eta, job.phase))
        row.progress.setToolTip(ANCHORS_TIP if job.phase == "anchors" else TWO_PASS_TIP if two_pass else "")
        if preview_png:
            pix = QPixmap()
            if pix.loadFromData(bytes(preview_png)):
                size = self.preview.size()
                self.preview.setPixmap(pix.scaled(size.width() - 4, size.height() - 4,
                                                  Qt.AspectRatioMode.KeepAspectRatio,
                                                  Qt.TransformationMode.SmoothTransformation))

    def _two_pass(self, job_id: str) -> bool:
        """Whether the job is a ConsiStory one (its step total counts both passes)."""
        job = self._queue.job(job_id) if hasattr(self._queue, "job") else None
        if job is None:
            return False
        spec = getattr(job, "spec", None)
        return job.kind == "character" or getattr(spec, "consistory", None) is not None

    def _finish(self, job_id: str, state: str, text: str) -> None:
        if job_id not in self._jobs:
            self._on_added(job_id)
        job = self._jobs[job_id]
        job.state = state
        row = self.row(job_id)
        row.state_label.setText(text)
        row.progress.setRange(0, 1)
        row.progress.setValue(1 if state == "done" else 0)
        row.progress.setFormat({"done": f"done in {format_eta(time.monotonic() - job.started)}" if job.started
                                else "done", "cancelled": "cancelled", "failed": "failed"}[state])
        if self._running == job_id:
            self._running = None
        self._update_buttons()

    def _on_finished(self, job_id: str, asset_ids: list) -> None:
        self._finish(job_id, "done", "Done")

    def _on_failed(self, job_id: str, kind: str, message: str, hint: str) -> None:
        if kind == "cancelled":
            self._finish(job_id, "cancelled", "Cancelled")
            return
        self._finish(job_id, "failed", "Failed")
        self.show_error(kind, message, hint)

    def _clear(self) -> None:
        """Drop the waiting jobs, then take every ended job's row (and a shown error) off the dock."""
        if self._queue is not None:
            self._queue.clear()
        for job_id in [j for j, job in self._jobs.items() if job.state in _ENDED]:
            item, row = self._rows.pop(job_id)
            self.list.takeItem(self.list.row(item))
            row.deleteLater()
            del self._jobs[job_id]
            self._titles.pop(job_id, None)
        self.error_box.hide()
        self._update_buttons()

    def _on_model_status(self, text: str) -> None:
        self.status_label.setText(text)

    # -- errors -------------------------------------------------------------------------------------------------
    def show_error(self, kind: str, message: str, hint: str) -> None:
        text = message if not hint else f"{message}\n{hint}"
        self.error_label.setText(text)
        if kind in ("out_of_memory", "oom"):
            self._fix_action, label = "use_less_memory", "Use less memory"
        elif kind in ("model", "model_load", "missing_model"):
            self._fix_action, label = "open_model_dialog", "Choose a model…"
        else:
            self._fix_action, label = "", ""
        self.fix_button.setText(label)
        self.fix_button.setVisible(bool(label))
        self.error_box.show()

    def _on_fix(self) -> None:
        if self._fix_action:
            self.fix_requested.emit(self._fix_action)
        self.error_box.hide()

    def _update_buttons(self) -> None:
        running = self._running is not None
        waiting = any(j.state == "queued" for j in self._jobs.values())
        self.cancel_now_button.setEnabled(running)
        self.cancel_after_button.setEnabled(running and waiting)
        self.clear_button.setEnabled(waiting or any(j.state in _ENDED for j in self._jobs.values()))
