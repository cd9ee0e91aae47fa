"""The generation queue: a GUI-thread ``JobQueue`` feeding one long-lived worker on its own ``QThread``.

Contract (QtCore only):
- ``JobQueue`` lives in the thread that created it (the GUI thread) and owns the pending list; it hands the
  worker one job at a time and the next only after the previous one's ``job_finished``/``job_failed`` arrived,
  so a finished job's images are on disk and referenced in ``project.json`` (``app.job_runner.run_job``) before
  the next job starts.
- The worker (``_Worker``) is moved to the queue's ``QThread`` and owns the loaded model for its whole life; it
  loads it lazily on the first job (``model_status`` reports progress). Requests go in through a queued signal;
  only plain data comes out: ``job_added(id)``, ``job_started(id)``, ``job_progress(id, step, total,
  preview_png)`` (empty bytes when there is no preview), ``job_phase(id, phase)`` before the first step of each
  phase (``StepInfo.phase``: "anchors" while a character's anchors are drawn, then "denoise"; the step count starts
  again with each phase), ``job_finished(id, asset_ids)`` (asset ids in ``job.panel_ids`` order),
  ``job_failed(id, kind, message, hint)`` with ``kind`` in ``FAILURE_KINDS``;
  "cancelled" is a kind of its own, never a failure to show as an error.
- ``cancel_now()`` makes the engine raise at its next step boundary (nothing is decoded or written) and drops
  the pending jobs; ``cancel_after_current()`` and ``clear()`` drop the pending jobs and let the running one
  finish. Dropped jobs are reported as ``job_failed(id, "cancelled", ...)``.
- ``model_key`` is the (source, device, dtype, cpu_offload, vae_tiling) later jobs use (``("preloaded", ...)`` after
  ``set_model``); ``is_running()`` tells whether the worker thread is alive (false after ``shutdown``).
- ``warm_up()`` asks the idle worker to import the engine (torch, diffusers, the pipelines) before the first job,
  so the first job does not pay for it; it runs on the worker thread, never blocks the caller, and ``warmed_up``
  is emitted when it is done. (The import still holds the GIL in C code for up to ~250 ms at a time, so the GUI
  may stutter once while it runs; better while idle than while a job runs.)
- Jobs are ``app.job_plan.Job``s or ``app.anchor_jobs.CharacterJob``s (anything ``app.job_runner.run_job`` runs).
- ``shutdown()`` (also connected to ``QCoreApplication.aboutToQuit``) cancels, then ``thread.quit(); wait()`` from
  the owning thread. The owner must call it (or quit the app) before dropping the queue.
"""

from __future__ import annotations

import io
import threading
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from .character_library import LibraryError
from .job_plan import Job
from .job_runner import run_job
from .project_model import Project, ProjectError

__all__ = ["JobQueue", "FAILURE_KINDS", "classify_error"]

FAILURE_KINDS = ("cancelled", "out_of_memory", "model", "invalid", "io", "internal")


def classify_error(exc: BaseException) -> tuple[str, str, str]:
    """(kind, message, hint) for an exception raised while running a job."""
    from engine.errors import Cancelled, EngineError, InvalidRequestError, ModelLoadError, OutOfMemoryError

    if isinstance(exc, Cancelled):
        return "cancelled", exc.message, ""
    if isinstance(exc, (OutOfMemoryError, MemoryError)):
        hint = getattr(exc, "hint", None) or ("Try a smaller batch or panel size, or use less memory "
                                              "(Model → Model…).")
        return "out_of_memory", getattr(exc, "message", None) or "The computer ran out of memory.", hint
    if isinstance(exc, ModelLoadError):
        return "model", exc.message, exc.hint or "Choose another model in the model settings."
    if isinstance(exc, InvalidRequestError):
        return "invalid", exc.message, exc.hint or "Fix the panel and run it again."
    if isinstance(exc, ProjectError):
        return "io", str(exc), "The images already finished are saved; fix the project and run the job again."
    if isinstance(exc, LibraryError):  # saving a new identity in the character library: a name, a full disk
        return "io", exc.message, exc.hint or "Fix it and generate the anchors again."
    if isinstance(exc, OSError):
        return "io", f"Could not write the result: {exc.strerror or exc}.", \
            "Check the disk has free space and the project folder is writable, then run the job again."
    if isinstance(exc, EngineError):
        return "internal", exc.message, exc.hint or ""
    return "internal", f"Unexpected error: {type(exc).__name__}: {exc}", \
        "This is a bug in Consistory Studio; the project is safe. Please report it with the log."


@dataclass(frozen=True)
class _Request:
    job: Job
    folder: Path
    project: Project | None
    model_key: tuple
    model: Any  # a preloaded engine LoadedModel, or None to load model_key's source


class _Worker(QObject):
    """Runs jobs. Lives in the queue's ``QThread``: ``run`` runs there; it never touches the queue's state."""

    started = Signal(str)
    progress = Signal(str, int, int, bytes)
    phase = Signal(str, str)
    finished = Signal(str, list)
    failed = Signal(str, str, str, str)
    status = Signal(str)
    warmed = Signal()

    def __init__(self, cancel: threading.Event, preview_every: int):
        super().__init__()
        self._cancel = cancel
        self._preview_every = preview_every
        self._model: Any = None
        self._model_key: tuple | None = None

    def _ensure_model(self, request: _Request) -> Any:
        if request.model is not None:
            return request.model
        if self._model is None or self._model_key != request.model_key:
            from engine.model_loader import load_model

            source, device, dtype, cpu_offload, vae_tiling = request.model_key
            self._model = None  # free the previous one first
            self.status.emit(f"Loading model {source}…")
            self._model = load_model(source, device=device, dtype=dtype, cpu_offload=cpu_offload,
                                     vae_tiling=vae_tiling, progress=self._load_progress)
            self._model_key = request.model_key
            self.status.emit(f"Model ready: {source} ({self._model.device}, "
                             f"{str(self._model.dtype).replace('torch.', '')})")
        return self._model

    def _load_progress(self, text: str, fraction: float | None = None) -> None:
        """The loader's progress (a download reports every chunk): shown, and where "Cancel now" or quitting
        stops a download or load that would otherwise run to its end."""
        if self._cancel.is_set():
            from engine.errors import Cancelled

            raise Cancelled("Cancelled while the model was loading.")
        self.status.emit(f"{text} ({round(100 * fraction)} %)" if fraction is not None else str(text))

    @Slot()
    def warm_up(self) -> None:
        """Import the engine's heavy modules on this thread (a no-op once imported)."""
        try:  # the modules whose import holds the GIL longest (measured: 100-250 ms each, in C code)
            import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion  # noqa: F401
            import diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl  # noqa: F401

            import engine.consistory.pipeline  # noqa: F401
            import engine.generate  # noqa: F401 - torch, diffusers
            import engine.model_loader  # noqa: F401
        except Exception:  # noqa: BLE001 - the first job reports any real problem
            traceback.print_exc()
        self.warmed.emit()

    @Slot(object)
    def run(self, request: _Request) -> None:
        job = request.job
        self.started.emit(job.id)
        preview_index = job.image_index[0] if job.image_index else 0
        current_phase = ""

        def on_step(info: Any) -> None:
            nonlocal current_phase
            phase = str(getattr(info, "phase", "denoise"))
            if phase != current_phase:
                current_phase = phase
                self.phase.emit(job.id, phase)
            png = b""
            if info.preview:
                image = info.preview[min(preview_index, len(info.preview) - 1)]
                buf = io.BytesIO()
                image.save(buf, format="PNG")
                png = buf.getvalue()
            self.progress.emit(job.id, int(info.step), int(info.total), png)

        try:
            if self._cancel.is_set():
                from engine.errors import Cancelled

                raise Cancelled()
            model = self._ensure_model(request)
            assets = run_job(job, request.project, request.folder, model, on_step, self._cancel.is_set,
                             preview_every=self._preview_every)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message; the thread lives on
            kind, message, hint = classify_error(exc)
            if kind == "internal":
                traceback.print_exc()
            if request.model is None and self._model is None:  # else the line keeps "Downloading … (37 %)"
                self.status.emit("Model not loaded: " + ("stopped; it loads again with the next job"
                                                         if kind == "cancelled" else message))
            self.failed.emit(job.id, kind, message, hint)
            return
        self.finished.emit(job.id, list(assets))


class JobQueue(QObject):
    """Pending jobs and the worker thread that runs them (see the module docstring). GUI thread only."""

    job_added = Signal(str)
    job_started = Signal(str)
    job_progress = Signal(str, int, int, bytes)
    job_phase = Signal(str, str)
    job_finished = Signal(str, list)
    job_failed = Signal(str, str, str, str)
    model_status = Signal(str)
    warmed_up = Signal()
    _dispatch = Signal(object)
    _warm = Signal()

    def __init__(self, folder: str | Path | None = None, parent: QObject | None = None, *, preview_every: int = 2):
        super().__init__(parent)
        self._folder = Path(folder) if folder is not None else None
        self._project: Project | None = None
        self._pending: deque[tuple[Job, Path, Project | None]] = deque()
        self._jobs: dict[str, Job] = {}
        self._running: str | None = None
        self._closed = False
        self._cancel = threading.Event()
        from .model_choice import default_model_source

        self._model_key: tuple = (default_model_source(), None, None, False, False)
        self._model: Any = None
        self._thread = QThread()
        self._thread.setObjectName("consistory-generation")
        self._worker = _Worker(self._cancel, preview_every)
        self._worker.moveToThread(self._thread)
        self._dispatch.connect(self._worker.run)
        self._warm.connect(self._worker.warm_up)
        self._worker.started.connect(self._on_started)
        self._worker.progress.connect(self._on_progress)
        self._worker.phase.connect(self._on_phase)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.status.connect(self._on_status)
        self._worker.warmed.connect(self.warmed_up)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._thread.start()

    # -- configuration ------------------------------------------------------------------------------------------
    def set_model_source(self, source: str, device: str | None = None, dtype: str | None = None,
                         cpu_offload: bool = False, vae_tiling: bool = False) -> None:
        """Which model later jobs use; it is loaded in the worker when the next job starts."""
        self._model_key = (source, device, dtype, cpu_offload, vae_tiling)
        self._model = None
        self.model_status.emit(f"Model {source} will load with the next job")

    def set_model(self, model: Any) -> None:
        """Use an already loaded engine model (CLI, tests). It must not be used elsewhere while jobs run."""
        self._model = model
        self._model_key = ("preloaded", id(model), None, False, False)

    def set_project(self, project: Project | None, folder: str | Path) -> None:
        """Where results go (``project`` only matters while the folder has no project.json yet)."""
        self._project, self._folder = project, Path(folder)

    @property
    def model_key(self) -> tuple:
        """(source, device, dtype, cpu_offload, vae_tiling) of the model later jobs use; ``("preloaded", ...)`` after
        ``set_model``."""
        return self._model_key

    def is_running(self) -> bool:
        """Whether the worker thread is alive (it is from construction until ``shutdown``)."""
        return self._thread.isRunning()

    def warm_up(self) -> None:
        """Import torch/diffusers on the idle worker thread now rather than when the first job starts."""
        if not self._closed:
            self._warm.emit()

    # -- queue ----------------------------------------------------------------------------------------------------
    def enqueue(self, job: Job) -> None:
        if self._closed:
            raise RuntimeError("The job queue was shut down.")
        if self._folder is None:
            raise ProjectError("Save the project in a folder before generating images.")
        self._pending.append((job, self._folder, self._project))
        self._jobs[job.id] = job
        self.job_added.emit(job.id)
        self._maybe_start()

    def job(self, job_id: str) -> Job | None:
        """The queued or running job with this id (still available inside ``job_finished``/``job_failed`` slots),
        e.g. to map ``job_finished``'s asset ids onto ``job.panel_ids`` with ``app.job_runner.apply_results``."""
        return self._jobs.get(job_id)

    def pending_ids(self) -> list[str]:
        return [job.id for job, _, _ in self._pending]

    @property
    def running_id(self) -> str | None:
        return self._running

    def is_idle(self) -> bool:
        return self._running is None and not self._pending

    def cancel_now(self) -> None:
        """Stop the running job at the engine's next step boundary and drop the pending ones."""
        if self._running is not None:
            self._cancel.set()
        self.clear()

    def cancel_after_current(self) -> None:
        """Let the running job finish; drop the pending ones."""
        self.clear()

    def clear(self) -> None:
        """Drop the pending jobs (reported as cancelled); the running one continues."""
        dropped, self._pending = list(self._pending), deque()
        for job, _, _ in dropped:
            self.job_failed.emit(job.id, "cancelled", "Removed from the queue before it started.", "")
            self._jobs.pop(job.id, None)

    @Slot()
    def shutdown(self) -> None:
        """Cancel everything and join the worker thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._cancel.set()
        self.clear()
        self._thread.quit()
        self._thread.wait()

    # -- worker messages (queued into this thread) -------------------------------------------------------------
    def _maybe_start(self) -> None:
        if self._running is not None or not self._pending or self._closed:
            return
        job, folder, project = self._pending.popleft()
        self._running = job.id
        self._cancel.clear()
        self._dispatch.emit(_Request(job=job, folder=folder, project=project, model_key=self._model_key,
                                     model=self._model))

    @Slot(str)
    def _on_started(self, job_id: str) -> None:
        self.job_started.emit(job_id)

    @Slot(str, int, int, bytes)
    def _on_progress(self, job_id: str, step: int, total: int, preview: bytes) -> None:
        self.job_progress.emit(job_id, step, total, bytes(preview))

    @Slot(str, str)
    def _on_phase(self, job_id: str, phase: str) -> None:
        self.job_phase.emit(job_id, phase)

    @Slot(str, list)
    def _on_finished(self, job_id: str, asset_ids: list) -> None:
        self._running = None
        self.job_finished.emit(job_id, list(asset_ids))
        self._jobs.pop(job_id, None)
        self._maybe_start()

    @Slot(str, str, str, str)
    def _on_failed(self, job_id: str, kind: str, message: str, hint: str) -> None:
        self._running = None
        self.job_failed.emit(job_id, kind, message, hint)
        self._jobs.pop(job_id, None)
        self._maybe_start()

    @Slot(str)
    def _on_status(self, text: str) -> None:
        self.model_status.emit(text)
