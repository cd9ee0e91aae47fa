"""File and project-structure actions of the main window: new / open / save / save as / export, autosave and the
recovery offer, first-run sample project, adding and deleting characters, panels and pages, and the character
library actions (``ui.character_library_actions``).

Every question is a ``QMessageBox`` whose buttons a user (or a test) clicks; errors are one sentence with what to
do, and nothing already saved is lost.
"""

from __future__ import annotations

import random
import shutil
import uuid
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QMessageBox

from app import project_store
from app.app_session import ProjectChange
from app.commands import AddCharacter, AddPage, AddPanel, RemoveCharacter, RemovePage, RemovePanel
from app.layouts import load_layout
from app.project_model import BookSettings, Character, Page, Panel, Project, ProjectError, SlotFill
from app.model_choice import default_model_source
from app.model_profiles import profile_for
from app.user_dirs import data_dir
from ui.character_library_actions import LibraryActions
from ui.export_dialog import ExportDialog
from ui.new_project_dialog import NewProjectDialog
from ui.project_undo import push_command
from ui.window_host import WindowHost

__all__ = ["ProjectFiles", "SAMPLE_PROJECT", "TOY_SAMPLE_PROJECT", "sample_project", "new_id"]

SAMPLE_PROJECT = Path(__file__).resolve().parent.parent / "projects" / "sample-storybook"
TOY_SAMPLE_PROJECT = SAMPLE_PROJECT.parent / "toy-storybook"


def sample_project(model_source: str) -> Path:
    """The sample a first run opens: the toy model only knows toy-world words, so it gets the toy-world book;
    every other model gets the fox-and-bear storybook."""
    return TOY_SAMPLE_PROJECT if model_source == "toy" else SAMPLE_PROJECT
DEFAULT_LAYOUT = "2x2"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class ProjectFiles(QObject):
    def __init__(self, window: WindowHost) -> None:
        super().__init__(window)
        self.w = window
        self.last_export = None
        self.library: LibraryActions | None = None  # made on first use

    @property
    def session(self):
        return self.w.session

    # -- start-up ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """First run: a copy of the sample project; later: the most recent project that still opens."""
        s = self.w.settings
        sample = sample_project(s.model_source or default_model_source())
        if not s.first_run_done and (sample / project_store.PROJECT_FILE).is_file():
            s.first_run_done = True
            target = data_dir() / "projects" / sample.name
            try:
                if not target.exists():
                    shutil.copytree(sample, target)
                self.open_folder(target)
            except (OSError, ProjectError) as exc:
                self.w.show_status_error(f"Could not open the sample project: {exc}")
            return
        s.first_run_done = True
        for folder in s.recent_projects:
            if (Path(folder) / project_store.PROJECT_FILE).is_file():
                self.open_folder(folder)
                return

    # -- new / open / save -------------------------------------------------------------------------------------
    def leave_project(self, then: str, *, save: bool = True) -> bool:
        """Before another project or folder takes this one's place: pictures still being drawn for this folder are
        stopped (after asking: they would land in the old folder), and unsaved edits are offered for saving
        (``save``). False when the user keeps things as they are."""
        busy = self.w.generation.busy()
        if busy and not self._ask("Pictures are being drawn",
                                  f"Pictures are still being drawn for this project. Stop them and {then}? "
                                  "Finished pictures are kept."):
            return False
        if save and not self.maybe_save():
            return False
        if busy:
            self.w.generation.queue.cancel_now()
        return True

    def new_project(self) -> None:
        # the dialog first: cancelling it must not have stopped the jobs or dropped the edits already
        parent = self.session.folder.parent if self.session.folder else Path.home()
        dialog = NewProjectDialog(parent, self.w)
        if dialog.exec() != NewProjectDialog.DialogCode.Accepted:
            return
        if not self.leave_project("make a new project"):
            return
        self.create_project(dialog.folder(), dialog.title(), dialog.page_preset())

    def create_project(self, folder: Path, title: str, page_preset: str = "us-comic") -> None:
        project = Project(title=title, book=BookSettings(title=title, page_preset=page_preset))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            project_store.save_project(project, folder)
        except (OSError, ProjectError) as exc:
            self.w.show_error(f"Could not create the project in {folder}: {exc}. Choose another folder.")
            return
        self.session.open(project, folder)
        self.w.settings.add_recent_project(folder)
        self.w.statusBar().showMessage(f"Created {folder}", 8000)

    def open_dialog(self) -> None:
        # the dialog first: cancelling it must not have stopped the jobs or dropped the edits already
        folder = QFileDialog.getExistingDirectory(self.w, "Open a project folder (it holds project.json)")
        if folder and self.leave_project("open another project"):
            self.open_folder(folder)

    def open_recent(self, folder: str | Path) -> None:
        if self.leave_project("open another project"):
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> bool:
        folder = Path(folder)
        try:
            if project_store.recovery_available(folder):
                if self._ask("Recover unsaved changes?",
                             f"{folder.name} was not saved after its last changes (the app may have crashed). "
                             "Recover those changes? (No opens the last saved version and keeps the unsaved changes "
                             f"in {project_store.DECLINED_AUTOSAVE_FILE}.)"):
                    project = project_store.recover(folder, allow_missing=True)
                    self._open_unsaved(project, folder)
                    self._opened(folder, f"Recovered the unsaved changes of {folder}; save to keep them")
                    return True
                project_store.set_aside_autosave(folder)
            project = project_store.open_project(folder, allow_missing=True)
            self.session.open(project, folder)
        except ProjectError as exc:
            if self._offer_backup(folder, exc):
                return True
            self.w.show_error(f"Could not open {folder}: {exc}")
            self.w.settings.forget_recent_project(folder)
            return False
        except OSError as exc:  # setting the autosave aside: a read-only folder
            self.w.show_error(f"Could not open {folder}: {exc.strerror or exc}.")
            return False
        self._opened(folder, f"Opened {folder}")
        return True

    def _open_unsaved(self, project, folder: Path) -> None:
        """Open a project whose content is not what project.json holds (a recovered autosave, the backup)."""
        self.session.open(project, folder)
        self.session.set_modified(True)
        self.w.undo_stack.resetClean()  # no undo can bring back a state that is on disk

    def _opened(self, folder: Path, message: str) -> None:
        self.w.settings.add_recent_project(folder)
        self.w.statusBar().showMessage(message, 8000)

    def _offer_backup(self, folder: Path, exc: ProjectError) -> bool:
        """project.json is damaged but the previous save's copy is there: offer to open that copy instead."""
        backup = folder / project_store.BACKUP_FILE
        if not backup.is_file() or not (folder / project_store.PROJECT_FILE).is_file():
            return False
        try:
            project = project_store.open_backup(folder, allow_missing=True)
        except ProjectError:
            return False
        if not self._ask("Open the previous version?",
                         f"{folder.name}'s project.json could not be read: {exc.message}\n\nOpen the previous version "
                         f"(from {project_store.BACKUP_FILE})? Saving then writes it back to project.json; the "
                         "damaged file is left as it is until then."):
            return False
        self._open_unsaved(project, folder)
        self._opened(folder, f"Opened the previous version of {folder}; save to keep it")
        return True

    def save(self) -> bool:
        if self.session.project is None:
            return True
        if self.session.folder is None:
            return self.save_as()
        try:
            project_store.save_project(self.session.project, self.session.folder)
        except (OSError, ProjectError) as exc:
            self.w.show_error(f"Could not save: {exc}. Your changes are still open; free disk space or use "
                              "Save as to pick another folder.")
            return False
        self.w.undo_stack.setClean()
        self.session.set_modified(False)
        self.w.statusBar().showMessage("Saved", 5000)
        return True

    def save_as(self) -> bool:
        if self.session.project is None:
            return True
        folder = QFileDialog.getExistingDirectory(self.w, "Save the project into an empty folder")
        if not folder:
            return False
        target = Path(folder)
        if self.session.folder is not None and target.resolve() == self.session.folder.resolve():
            self.w.show_error(f"{target} is this project's own folder: use Save (Ctrl+S), or choose an empty "
                              "folder for the copy.")
            return False
        problem = project_store.new_folder_problem(target)
        if problem:
            self.w.show_error(f"Could not save into {target}: {problem}. Choose an empty folder (the folder "
                              "dialog can make a new one).")
            return False
        if not self.leave_project("save into the new folder", save=False):
            return False
        try:
            for sub in ("assets", "characters"):  # pictures and the characters' saved identities
                if self.session.folder is not None and (self.session.folder / sub).is_dir():
                    shutil.copytree(self.session.folder / sub, target / sub, dirs_exist_ok=True)
            project_store.save_project(self.session.project, target)
        except (OSError, ProjectError) as exc:
            self.w.show_error(f"Could not save into {target}: {exc}. Choose another folder.")
            return False
        self.session.set_folder(target)
        self.w.settings.add_recent_project(target)
        self.w.undo_stack.setClean()
        self.session.set_modified(False)
        return True

    def autosave(self) -> None:
        if self.session.project is None or self.session.folder is None or not self.session.modified:
            return
        try:
            project_store.autosave(self.session.project, self.session.folder)
        except (OSError, ProjectError) as exc:
            self.w.show_status_error(f"Autosave failed: {exc}. Save by hand (Ctrl+S) to keep your work.")

    def maybe_save(self) -> bool:
        """Before closing or replacing the project: ask to save unsaved edits. False = the user cancelled."""
        if self.session.project is None or not self.session.modified:
            return True
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes",
                          f"Save the changes to “{self.session.project.title}”?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self.w)
        box.setObjectName("unsaved_changes_box")
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        if answer != QMessageBox.StandardButton.Discard:
            return False
        if self.session.folder is not None:  # else the next start offers the discarded edits back as a crash's
            try:
                project_store.discard_autosave(self.session.folder)
            except OSError:
                pass  # a read-only folder: the offer comes back, which loses nothing
        return True

    def _ask(self, title: str, text: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.w)
        return box.exec() == QMessageBox.StandardButton.Yes

    # -- export ------------------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.session.project is None:
            return
        folder = self.session.folder or Path.home()
        dialog = ExportDialog(folder / "export" / "book.pdf", self.w)
        if dialog.exec() != ExportDialog.DialogCode.Accepted:
            return
        self.export(dialog.out_path(), dialog.fmt(), dialog.dpi())

    def export(self, out_path: Path, fmt: str = "pdf", dpi: int = 300):
        from app.export import ExportError, export_book

        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            QApplication.setOverrideCursor(self.w.cursor())
            report = export_book(self.session.project, self.session.folder, out_path, fmt, dpi)
        except (ExportError, ProjectError, OSError, ValueError) as exc:
            self.w.show_error(f"The export did not work: {exc}")
            return None
        finally:
            QApplication.restoreOverrideCursor()
        self.last_export = report
        text = f"Exported {report.pages_written} page(s) to {out_path}."
        warnings = report.warnings()
        self.w.statusBar().showMessage(text, 10000)
        if warnings:
            self.w.show_info("Exported, with things to check", text + "\n\n" + "\n".join(warnings[:12]))
        return report

    # -- structure ---------------------------------------------------------------------------------------------
    def add_item(self, kind: str) -> None:
        project = self.session.project
        if project is None:
            return
        if kind == "character":
            n = len(project.characters) + 1
            item_id = new_id("char")
            cmd = AddCharacter(Character(id=item_id, name=f"Character {n}", description="a friendly character",
                                         subjects=("character",),
                                         dropout=profile_for(self.w.generation.model_source()).dropout))
        elif kind == "panel":
            item_id = new_id("panel")
            cmd = AddPanel(Panel(id=item_id, text="", seed=random.randrange(2**31 - 1)))
        else:
            item_id = new_id("page")
            slots = len(load_layout(DEFAULT_LAYOUT).slots)
            cmd = AddPage(Page(id=item_id, layout=DEFAULT_LAYOUT, slots=tuple(SlotFill() for _ in range(slots))))
        error = push_command(self.w.undo_stack, self.session, cmd, ProjectChange.of(kind, item_id))
        if error:
            self.w.show_error(error)
            return
        self.session.select(kind, item_id)

    def delete_selected(self) -> None:
        kind, item_id = self.session.selection
        cmd = {"character": RemoveCharacter, "panel": RemovePanel, "page": RemovePage}.get(kind)
        if cmd is None or not item_id:
            return
        error = push_command(self.w.undo_stack, self.session, cmd(item_id), ProjectChange.of(kind, item_id))
        if error:
            self.w.show_error(error)
            return
        self.session.select("", "")

    # -- character library -------------------------------------------------------------------------------------
    def fill_library_menu(self, menu: QMenu) -> None:
        for name, label in (("save", "Save selected character to library"), ("add", "Add from library…"),
                            ("export", "Export .character file…"), ("import", "Import .character file…")):
            menu.addAction(label, lambda a=name: self.library_action(a, self._selected_character()))

    def _selected_character(self) -> str:
        kind, item_id = self.session.selection
        return item_id if kind == "character" else ""

    def wire_library_buttons(self, buttons: dict) -> None:
        """The editor's library buttons are always usable (each says what is missing when it cannot act)."""

    def library_action(self, action: str, character_id: str) -> None:
        if self.library is None:
            self.library = LibraryActions(self.w)
        self.library.run(action, character_id)
