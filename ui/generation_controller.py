"""Turns "generate this" gestures into planned jobs on the ``JobQueue`` and finished jobs back into the project.

GUI thread only. Panel sizes follow their page slot's shape (longest side = the ``max_size`` setting, rounded
to what the model accepts) and are set by an undoable edit before planning. Finished panel images are applied
with ``app.job_runner.apply_results`` outside the undo stack (the images are on disk and referenced in
``project.json`` already). A finished character job (``app.anchor_jobs.CharacterJob``: the character's identity,
made on the worker thread) sets the character's ``identity_file`` as an undoable edit, unless the character was
changed meanwhile, and announces ``anchors_ready``.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from app.anchor_jobs import CharacterJob, plan_character_job
from app.app_session import AppSession, ProjectChange
from app.commands import EditCharacter, EditPanel
from app.job_plan import Job, plan_jobs
from app.job_queue import JobQueue
from app.job_runner import apply_results
from app.model_choice import default_model_source
from app.model_profiles import job_words_message, profile_for
from app.project_model import ProjectError
from app.settings import Settings
from ui.project_undo import push_command
from ui.queue_dock import QueueDock

__all__ = ["GenerationController", "slot_aspect", "size_for"]


def slot_aspect(project, panel_id: str) -> float | None:
    """Width/height of the first page slot showing ``panel_id`` (``None`` when it is on no page)."""
    from app.layouts import load_layout
    from app.page_geometry import page_geometry, slot_rects

    for index, page in enumerate(project.pages):
        for i, fill in enumerate(page.slots):
            if fill.panel_id == panel_id:
                try:
                    geometry = page_geometry(project.book, index, bleed=False)
                    gutter = page.gutter_in if page.gutter_in is not None else project.book.gutter_in
                    rect = slot_rects(geometry, load_layout(page.layout), gutter)[i]
                except (ValueError, IndexError, OSError):
                    return None
                return rect.w / rect.h if rect.h > 0 else None
    return None


def size_for(aspect: float | None, longest: int, multiple: int) -> tuple[int, int]:
    """(width, height) with the given aspect, longest side ≈ ``longest``, both multiples of ``multiple``."""
    longest = max(multiple, round(longest / multiple) * multiple)
    if aspect is None or aspect <= 0:
        return longest, longest
    if aspect >= 1:
        return longest, max(multiple, round(longest / aspect / multiple) * multiple)
    return max(multiple, round(longest * aspect / multiple) * multiple), longest


class GenerationController(QObject):
    anchors_ready = Signal(str)   # character id
    job_done = Signal()           # any job finished with images (autosave hook)
    error = Signal(str)           # a request refused before it reached the queue

    def __init__(self, session: AppSession, settings: Settings, dock: QueueDock, queue: JobQueue | None = None,
                 parent: QObject | None = None, stack: QUndoStack | None = None) -> None:
        super().__init__(parent)
        self._session, self._settings, self._dock = session, settings, dock
        self.stack = stack
        self.queue = queue if queue is not None else JobQueue(preview_every=max(0, settings.preview_every),
                                                              parent=self)
        self._jobs: dict[str, tuple[Job | CharacterJob, Path | None]] = {}  # each with the folder it draws for
        dock.set_queue(self.queue)
        self.queue.job_finished.connect(self._on_finished)
        self.queue.job_failed.connect(lambda job_id, *_: self._jobs.pop(job_id, None))  # failed or cancelled
        session.project_changed.connect(self._on_project_changed)
        session.folder_changed.connect(lambda _f: self._on_project_changed(session.project))
        self.apply_model_settings()

    # -- settings ----------------------------------------------------------------------------------------------
    def model_source(self) -> str:
        return self._settings.model_source or default_model_source()

    def apply_model_settings(self) -> None:
        s = self._settings
        if self.queue.model_key[0] == "preloaded":
            return  # a test or bench handed the queue a loaded model
        self.queue.set_model_source(self.model_source(), None if s.device == "auto" else s.device,
                                    None if s.precision == "auto" else s.precision, s.cpu_offload, s.vae_tiling)

    def current_model_source(self) -> str | None:
        """The model source later jobs use (``None`` when a test handed the queue a loaded model)."""
        source = self.queue.model_key[0]
        return None if source == "preloaded" else str(source)

    def _multiple(self) -> int:
        return profile_for(self.model_source()).size_multiple

    def _longest(self) -> int:
        """The longest side to generate at: the user's setting, capped at what a built-in model draws."""
        return profile_for(self.model_source()).panel_side(self._settings.max_size)

    def _on_project_changed(self, project) -> None:
        if project is not None and self._session.folder is not None:
            self.queue.set_project(project, self._session.folder)

    # -- requests ----------------------------------------------------------------------------------------------
    def busy(self) -> bool:
        return not self.queue.is_idle()

    def _ready(self) -> bool:
        if self._session.project is None:
            self.error.emit("Open or create a project first (File → New project).")
            return False
        if self._session.folder is None:
            self.error.emit("Save the project in a folder before generating pictures (File → Save as).")
            return False
        return True

    def _enqueue(self, job: Job | CharacterJob, title: str, *, checked: bool = False) -> None:
        words = None if checked else job_words_message(profile_for(self.model_source()), job)
        if words:
            self.error.emit(f"{title} was not queued. {words}")
            return
        self._jobs[job.id] = (job, self._session.folder)
        self._dock.set_title(job.id, title)
        self.queue.enqueue(job)

    def generate_anchors(self, character_id: str) -> None:
        """Queue the job that draws the character's anchors and saves them as its identity (also: re-create
        them on the current model)."""
        if not self._ready():
            return
        c = self._session.character(character_id)
        if c is None:
            return
        side = self._longest()
        try:
            job = plan_character_job(self._session.project, character_id,
                                     size=size_for(1.0, side, self._multiple()), steps=self._settings.steps)
        except ProjectError as exc:
            self.error.emit(f"Cannot draw the anchors of {c.name or 'this character'}: {exc}")
            return
        self._enqueue(job, job.title)

    def _fit_to_slot(self, panel_id: str) -> bool:
        """Give the panel its page slot's aspect at the size the model draws. False (and a message) when the
        project refuses that size: the panel is then not generated at a size nobody asked for."""
        panel = self._session.panel(panel_id)
        w, h = profile_for(self.model_source()).panel_size(
            size_for(slot_aspect(self._session.project, panel_id), self._longest(), self._multiple()))
        if (panel.width, panel.height) != (w, h) and self.stack is not None:
            refused = push_command(self.stack, self._session, EditPanel(panel_id, width=w, height=h),
                                   ProjectChange.of("panel", panel_id, initiator=self))
            if refused:
                n = [p.id for p in self._session.project.panels].index(panel_id) + 1
                self.error.emit(f"Panel {n} cannot be drawn at {w}×{h} px: {refused}")
                return False
        return True

    def generate_panel(self, panel_id: str, count: int = 1) -> None:
        if not self._ready() or self._session.panel(panel_id) is None:
            return
        if not self._fit_to_slot(panel_id):
            return
        project = self._session.project
        panel = project.panel(panel_id)
        n = [p.id for p in project.panels].index(panel_id) + 1
        seeds = [panel.seed] if count == 1 else [random.randrange(2**31 - 1) for _ in range(count)]
        planned: list[tuple[Job, str]] = []
        try:
            for k, seed in enumerate(seeds):
                variant = project if seed == panel.seed else project.with_panel(replace(panel, seed=seed))
                for job in plan_jobs(variant, max_batch=max(2, self._settings.max_batch), panel_ids=[panel_id],
                                     steps=self._settings.steps):
                    suffix = f" (variation {k + 1}/{count})" if count > 1 else ""
                    planned.append((job, f"Panel {n}{suffix}"))
        except ProjectError as exc:
            self.error.emit(f"Cannot draw panel {n}: {exc}")
            return
        profile = profile_for(self.model_source())
        words = next((m for m in (job_words_message(profile, job) for job, _ in planned) if m), None)
        if words:  # one message for the panel, not one box per variation
            self.error.emit(f"Panel {n} was not queued. {words}")
            return
        for job, title in planned:
            self._enqueue(job, title, checked=True)

    def _panels_in_queue(self) -> set[str]:
        """The panels of this folder's jobs that wait or run."""
        return {pid for job, folder in self._jobs.values() if folder == self._session.folder
                for pid in getattr(job, "panel_ids", ())}

    def generate_missing(self) -> None:
        """Queue every panel without a picture, except those already waiting or being drawn."""
        if not self._ready():
            return
        queued = self._panels_in_queue()
        missing = [p.id for p in self._session.project.panels if p.current is None and p.id not in queued]
        for panel_id in missing:
            if not self._fit_to_slot(panel_id):
                return
        project = self._session.project
        try:
            jobs = plan_jobs(project, max_batch=max(2, self._settings.max_batch), panel_ids=missing,
                             steps=self._settings.steps) if missing else []
        except ProjectError as exc:
            self.error.emit(f"Cannot draw the missing panels: {exc}")
            return
        if not jobs:
            self.error.emit("The panels without a picture are already in the queue."
                            if any(p.current is None for p in project.panels) else
                            "Every panel has a picture already. Select a panel and press Regenerate for a new one.")
        index = {p.id: i + 1 for i, p in enumerate(project.panels)}
        profile = profile_for(self.model_source())
        refused: list[str] = []
        first = None
        for job in jobs:
            title = "Panels " + ", ".join(str(index[p]) for p in job.panel_ids)
            words = job_words_message(profile, job)
            if words:
                refused.append(", ".join(str(index[p]) for p in job.panel_ids))
                first = first or words
                continue
            self._enqueue(job, title, checked=True)
        if refused:   # one message for the whole request
            self.error.emit(f"Panels {', '.join(refused)} were not queued. {first}")

    def generate_selected(self) -> None:
        kind, item_id = self._session.selection
        if kind == "character":
            self.generate_anchors(item_id)
        elif kind == "panel":
            self.generate_panel(item_id)

    # -- results -----------------------------------------------------------------------------------------------
    def _on_finished(self, job_id: str, asset_ids: list) -> None:
        job, folder = self._jobs.pop(job_id, (None, None))
        if job is None or folder != self._session.folder:
            return  # drawn for a project (folder) that is no longer open: its files are in that folder
        if isinstance(job, CharacterJob):
            self._identity_made(job, asset_ids[0] if asset_ids else "")
        elif self._session.project is not None:
            self._session.apply(apply_results(self._session.project, job, asset_ids),
                                ProjectChange(frozenset({"panel", "asset"}), frozenset(job.panel_ids), self))
        self.job_done.emit()

    def _identity_made(self, job: CharacterJob, identity_file: str) -> None:
        now = self._session.character(job.character_id)
        then = job.character
        if now is None or not identity_file:
            return
        if (now.subjects, now.anchor_prompts, now.anchor_seeds) != (then.subjects, then.anchor_prompts,
                                                                    then.anchor_seeds):
            if any(isinstance(j, CharacterJob) and j.character_id == now.id for j, _ in self._jobs.values()):
                return  # a later job for this character (a second re-roll) is queued: it brings the anchors
            self.error.emit(f"{now.name or 'The character'} was changed while its anchors were drawn, so they "
                            "were not used. Press “Generate anchors” again.")
            return
        if self.stack is not None:
            push_command(self.stack, self._session, EditCharacter(now.id, identity_file=identity_file),
                         ProjectChange.of("character", now.id, initiator=self))
        else:
            self._session.apply(self._session.project.with_character(replace(now, identity_file=identity_file)),
                                ProjectChange.of("character", now.id, initiator=self))
        self.anchors_ready.emit(now.id)

    def shutdown(self) -> None:
        self.queue.shutdown()
