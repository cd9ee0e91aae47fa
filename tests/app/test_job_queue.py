"""The JobQueue and its QThread worker (QtCore only; pytest-qt's ``qapp`` provides the application object):
results are committed before the next job starts, cancel-now stops within one step and writes nothing, errors
arrive as kinds, and shutdown with a running job joins the thread cleanly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QEventLoop, QObject, QTimer, Slot, qInstallMessageHandler

import engine.generate
from app.assets import asset_path
from app.job_plan import plan_jobs
from app.job_queue import FAILURE_KINDS, JobQueue
from app.project_model import BookSettings, GenerationSettings, Panel, Project
from app.project_store import open_project, save_project


class Recorder(QObject):
    """Lives in the GUI thread; records every queue signal in order."""

    def __init__(self, queue: JobQueue):
        super().__init__()
        self.queue = queue
        self.events: list[tuple] = []
        self.finished_panels: list[tuple[str, ...]] = []
        queue.job_added.connect(self.added)
        queue.job_started.connect(self.started)
        queue.job_progress.connect(self.progress)
        queue.job_phase.connect(self.phase)
        queue.job_finished.connect(self.finished)
        queue.job_failed.connect(self.failed)
        queue.model_status.connect(self.status)

    @Slot(str)
    def added(self, job_id):
        self.events.append(("added", job_id))

    @Slot(str)
    def started(self, job_id):
        self.events.append(("started", job_id))

    @Slot(str, int, int, bytes)
    def progress(self, job_id, step, total, preview):
        self.events.append(("progress", job_id, step, total, preview))

    @Slot(str, str)
    def phase(self, job_id, phase):
        self.events.append(("phase", job_id, phase))

    @Slot(str, list)
    def finished(self, job_id, assets):
        job = self.queue.job(job_id)  # still known while its signal is handled
        self.events.append(("finished", job_id, assets))
        self.finished_panels.append(job.panel_ids)

    @Slot(str, str, str, str)
    def failed(self, job_id, kind, message, hint):
        self.events.append(("failed", job_id, kind, message, hint))

    @Slot(str)
    def status(self, text):
        self.events.append(("status", text))

    def of(self, kind: str) -> list[tuple]:
        return [e for e in self.events if e[0] == kind]


def wait_until(predicate, timeout_s: float = 120.0) -> None:
    """Run the event loop until ``predicate()`` holds (checked every 10 ms) or fail after ``timeout_s``."""
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(10)
    poll.timeout.connect(lambda: loop.quit() if predicate() else None)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    poll.start()
    if not predicate():
        loop.exec()
    poll.stop()
    assert predicate(), "timed out waiting for the job queue"


class Gate:
    """Wraps the engine's generate: records the saved project at each call's start and can hold a run after step 1
    until released or cancelled (so a test acts at a known step, without sleeps or races)."""

    def __init__(self, monkeypatch, folder: Path):
        self.folder, self.hold, self.release = folder, False, threading.Event()
        self.referenced_at_start: list[set[str]] = []
        real = engine.generate.generate

        def gated(model, spec, *, on_step=None, should_cancel=None, **kwargs):
            saved = open_project(self.folder)  # raises if a referenced file is missing
            self.referenced_at_start.append({p.current for p in saved.panels if p.current})

            def step(info):
                on_step(info)
                if self.hold and info.step == 1:
                    while not self.release.is_set() and not should_cancel():
                        time.sleep(0.005)
            return real(model, spec, on_step=step, should_cancel=should_cancel, **kwargs)

        monkeypatch.setattr(engine.generate, "generate", gated)


@pytest.fixture
def setup(qapp, tmp_path, monkeypatch, tiny_sdxl):
    project = Project(title="Q", book=BookSettings(title="Q"), generation=GenerationSettings(steps=3),
                      panels=tuple(Panel(f"p{i}", f"a lake number {i}", seed=i, width=64, height=64)
                                   for i in range(3)))
    save_project(project, tmp_path)
    queue = JobQueue(tmp_path, preview_every=1)
    queue.set_model(tiny_sdxl)
    recorder = Recorder(queue)
    yield queue, recorder, project, Gate(monkeypatch, tmp_path), tmp_path
    queue.shutdown()
    assert not queue.is_running()


def test_each_job_is_committed_before_the_next_starts(setup):
    queue, rec, project, gate, folder = setup
    jobs = plan_jobs(project, max_batch=1)[:2]
    bad = plan_jobs(project, max_batch=1, size=(72, 72))[2]  # 72 px is not a multiple of 16: invalid request
    for job in (bad, *jobs):
        queue.enqueue(job)
    wait_until(lambda: queue.is_idle() and len(rec.of("finished")) + len(rec.of("failed")) == 3)
    assert rec.of("failed") == [("failed", bad.id, "invalid", rec.of("failed")[0][3], rec.of("failed")[0][4])]
    assert "72" in rec.of("failed")[0][3]
    (_, first, (a1,)), (_, second, (a2,)) = rec.of("finished")
    assert (first, second) == (jobs[0].id, jobs[1].id)
    assert rec.finished_panels == [("p0",), ("p1",)] and queue.job(first) is None
    assert gate.referenced_at_start == [set(), set(), {a1}]  # job 2 started after job 1 was referenced on disk
    saved = open_project(folder)
    assert [p.current for p in saved.panels] == [a1, a2, None]
    assert asset_path(folder, a1).is_file() and asset_path(folder, a2).is_file()
    steps = [(e[2], e[3]) for e in rec.of("progress") if e[1] == first]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert all(e[4].startswith(b"\x89PNG") for e in rec.of("progress"))
    order = [e[0] for e in rec.events if e[0] != "progress" and e[1] == first]
    assert order == ["added", "started", "phase", "finished"]
    assert ("phase", first, "denoise") in rec.events   # one phase, announced once, before its first step


def test_a_character_job_announces_its_anchors_phase_before_its_steps(setup, monkeypatch):
    """An identity job's anchors and its panel each count their steps from 1: the phase comes before each run, so
    the dock can say which bar it is showing."""
    import app.job_queue
    from engine.request import StepInfo

    queue, rec, project, gate, folder = setup

    def two_phase_run(job, project, folder, model, on_step, should_cancel, **kwargs):
        for phase in ("anchors", "denoise"):
            for step in (1, 2):
                on_step(StepInfo(step, 2, None, phase))
        return ["a1"]

    monkeypatch.setattr(app.job_queue, "run_job", two_phase_run)
    job = plan_jobs(project, max_batch=1)[0]
    queue.enqueue(job)
    wait_until(lambda: queue.is_idle() and rec.of("finished"))
    mine = [e[0] if e[0] != "progress" else e[2] for e in rec.events if e[0] in ("phase", "progress")]
    assert mine == ["phase", 1, 2, "phase", 1, 2]
    assert [e[2] for e in rec.of("phase")] == ["anchors", "denoise"]


def test_cancel_now_stops_within_one_step_and_writes_nothing(setup):
    queue, rec, project, gate, folder = setup
    gate.hold = True
    first, second = plan_jobs(project, max_batch=1)[:2]
    before = sorted(p.name for p in (folder / "assets").iterdir())
    queue.enqueue(first)
    queue.enqueue(second)
    wait_until(lambda: rec.of("progress"))
    queue.cancel_now()
    wait_until(lambda: queue.is_idle() and len(rec.of("failed")) == 2)
    assert [(e[1], e[2]) for e in rec.of("failed")] == [(second.id, "cancelled"), (first.id, "cancelled")]
    assert [e[2] for e in rec.of("progress")] == [1]
    assert rec.of("finished") == []
    assert sorted(p.name for p in (folder / "assets").iterdir()) == before == []
    assert open_project(folder) == project
    assert all(e[2] in FAILURE_KINDS for e in rec.of("failed"))


def test_cancel_after_current_finishes_the_running_job_only(setup):
    queue, rec, project, gate, folder = setup
    gate.hold = True
    first, second = plan_jobs(project, max_batch=1)[:2]
    queue.enqueue(first)
    queue.enqueue(second)
    wait_until(lambda: rec.of("progress"))
    queue.cancel_after_current()
    gate.release.set()
    wait_until(lambda: queue.is_idle() and rec.of("finished"))
    assert [e[1] for e in rec.of("finished")] == [first.id]
    assert [(e[1], e[2]) for e in rec.of("failed")] == [(second.id, "cancelled")]


def test_shutdown_with_a_running_job_joins_the_thread(setup):
    queue, rec, project, gate, folder = setup
    messages: list[str] = []
    previous = qInstallMessageHandler(lambda mode, context, text: messages.append(text))
    try:
        gate.hold = True
        queue.enqueue(plan_jobs(project, max_batch=1)[0])
        wait_until(lambda: rec.of("progress"))
        queue.shutdown()
        assert not queue.is_running()
        queue.shutdown()  # idempotent
    finally:
        qInstallMessageHandler(previous)
    assert not [m for m in messages if "QThread" in m]
    assert list((folder / "assets").iterdir()) == []
    with pytest.raises(RuntimeError, match="shut down"):
        queue.enqueue(plan_jobs(project, max_batch=1)[0])


def test_the_model_is_loaded_with_the_memory_settings(setup, monkeypatch):
    import engine.model_loader

    queue, rec, project, gate, folder = setup
    real, seen, models = engine.model_loader.load_model, [], []

    def load(source, **kw):
        seen.append((source, kw["cpu_offload"], kw["vae_tiling"]))
        models.append(real(source, **kw))
        return models[-1]

    monkeypatch.setattr(engine.model_loader, "load_model", load)
    queue.set_model_source("tiny", "cpu", None, True, True)
    job = plan_jobs(project, max_batch=1)[0]
    queue.enqueue(job)
    wait_until(lambda: rec.of("finished") or rec.of("failed"))
    assert not rec.of("failed") and seen == [("tiny", True, True)]
    assert models[0].pipe.vae.use_tiling and not models[0].cpu_offload  # on the CPU offload does not apply


def test_a_model_that_cannot_load_fails_as_model(setup):
    queue, rec, project, gate, folder = setup
    queue.set_model_source(str(folder / "no-such-model.safetensors"))
    job = plan_jobs(project, max_batch=1)[0]
    queue.enqueue(job)
    wait_until(lambda: rec.of("failed"))
    (_, job_id, kind, message, hint), = rec.of("failed")
    assert (job_id, kind) == (job.id, "model") and message and hint
    assert any("no-such-model" in e[1] for e in rec.of("status"))
    assert rec.of("status")[-1][1] == f"Model not loaded: {message}"  # not the last "Loading …" line


def test_public_state_and_warm_up(qtbot):
    import sys

    queue = JobQueue(preview_every=0)
    try:
        assert queue.is_running() and queue.model_key[1:] == (None, None, False, False)
        queue.set_model_source("tiny-sd15", "cpu", "float32", True, True)
        assert queue.model_key == ("tiny-sd15", "cpu", "float32", True, True)
        with qtbot.waitSignal(queue.warmed_up, timeout=120_000):
            queue.warm_up()
        assert "engine.consistory.pipeline" in sys.modules and queue.is_idle()
    finally:
        queue.shutdown()
    assert not queue.is_running()
    queue.warm_up()  # after shutdown: ignored, no error


def test_errors_are_classified_as_the_users_problem_or_a_bug():
    from app.character_library import LibraryError
    from app.job_queue import classify_error
    from app.project_model import ProjectError

    too_long = LibraryError("The name is too long (201 characters).", hint="Use at most 200 characters.")
    assert classify_error(too_long) == ("io", "The name is too long (201 characters).",
                                        "Use at most 200 characters.")
    assert classify_error(OSError(28, "No space left on device"))[:2] == \
        ("io", "Could not write the result: No space left on device.")
    assert classify_error(ProjectError("the panel has no text"))[0] == "io"
    kind, message, hint = classify_error(KeyError("x"))
    assert kind == "internal" and message.startswith("Unexpected error: KeyError") and "bug" in hint
    assert {classify_error(e)[0] for e in (too_long, KeyError("x"))} <= set(FAILURE_KINDS)


def test_cancel_now_stops_a_model_download(qapp, tmp_path, monkeypatch):
    """A download reports progress per chunk: "Cancel now" (and quitting) stops it there, not after it ends."""
    import engine.model_loader

    reported: list[int] = []

    def downloading(source, progress=None, **kw):
        for i in range(2000):  # 20 s of "download" unless stopped
            progress(f"Downloading {source}: chunk {i}", i / 2000)
            reported.append(i)
            time.sleep(0.01)
        raise AssertionError("the download ran to its end")

    monkeypatch.setattr(engine.model_loader, "load_model", downloading)
    project = Project(title="Q", book=BookSettings(title="Q"), panels=(Panel("p0", "a lake", seed=1, width=64,
                                                                             height=64),))
    save_project(project, tmp_path)
    queue = JobQueue(tmp_path, preview_every=0)
    rec = Recorder(queue)
    try:
        queue.set_model_source("someone/big-model")
        queue.enqueue(plan_jobs(project, max_batch=1)[0])
        wait_until(lambda: len(reported) >= 5)
        queue.cancel_now()
        wait_until(lambda: rec.of("failed"))
        (_, _, kind, message, _), = rec.of("failed")
        assert kind == "cancelled" and "while the model was loading" in message and len(reported) < 1000
        wait_until(lambda: rec.of("status") and rec.of("status")[-1][1].startswith("Model not loaded: stopped"))
    finally:
        queue.shutdown()
    assert not queue.is_running()
