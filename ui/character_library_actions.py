"""The character-library actions of the main window: save a character to the library, add characters from it,
export a character's ``.character`` file, import one (into the library and the project).

File reads and copies are small (a ``.character`` file is a few MB at most) and run on the GUI thread; making an
identity never does (that is a queue job). Every refusal is one sentence saying what to do; nothing is lost.
Adding a character is one undoable edit (its identity file is copied into the project's ``characters/`` first).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from app.app_session import ProjectChange
from app.assets import atomic_write_bytes, resolve_inside
from app.character_identity import add_library_character
from app.character_library import SUFFIX, CharacterLibrary, LibraryError, slugify
from app.commands import AddCharacter
from app.project_model import ProjectError
from ui.library_dialog import LibraryDialog
from ui.project_undo import push_command
from ui.window_host import WindowHost

__all__ = ["LibraryActions"]


class LibraryActions(QObject):
    def __init__(self, window: WindowHost) -> None:
        super().__init__(window)
        self.w = window
        self.library_factory = CharacterLibrary  # tests may point it elsewhere

    @property
    def session(self):
        return self.w.session

    def run(self, action: str, character_id: str) -> None:
        handler = {"save": self.save, "add": self.add, "export": self.export, "import": self.import_file}.get(action)
        if handler is None:
            self.w.show_error(f"Unknown library action {action!r}.")
            return
        try:
            handler(character_id) if action in ("save", "export") else handler()
        except (LibraryError, ProjectError) as exc:
            self.w.show_error(str(exc))
        except OSError as exc:
            self.w.show_error(f"The file could not be read or written: {exc.strerror or exc}. Check the disk and "
                              "the folder's permissions, then try again.")

    def _identity_path(self, character_id: str) -> Path | None:
        c = self.session.character(character_id)
        if c is None:
            self.w.show_error("Select a character first (left, under Characters).")
            return None
        if not c.identity_file or self.session.folder is None:
            self.w.show_error(f"{c.name or 'This character'} has no anchors yet: press “Generate anchors” first "
                              "(that also saves it to the library).")
            return None
        path = resolve_inside(self.session.folder, c.identity_file, what="identity file")
        if not path.is_file():
            raise ProjectError(f"the identity file {c.identity_file} is missing",
                               hint="Press “Generate anchors” to make it again.")
        return path

    def save(self, character_id: str) -> None:
        path = self._identity_path(character_id)
        if path is None:
            return
        entry = self.library_factory().import_file(path)
        self.w.show_info("Saved to the library", f"“{entry.name}” is in your character library; any project can "
                         "add it with “Add from library…”.")

    def export(self, character_id: str) -> None:
        path = self._identity_path(character_id)
        if path is None:
            return
        c = self.session.character(character_id)
        start = str(Path.home() / f"{slugify(c.name or 'character')}{SUFFIX}")
        dest, _ = QFileDialog.getSaveFileName(self.w, "Export the character", start, f"Characters (*{SUFFIX})")
        if not dest:
            return
        dest_path = Path(dest) if dest.endswith(SUFFIX) else Path(dest + SUFFIX)
        if not dest_path.parent.is_dir():
            raise LibraryError(f"The folder {dest_path.parent} does not exist.", hint="Choose another place.")
        atomic_write_bytes(dest_path, path.read_bytes())
        self.w.statusBar().showMessage(f"Exported {c.name} to {dest_path}", 10000)
        self.w.last_message = f"Exported {c.name} to {dest_path}"

    def _need_folder(self) -> bool:
        if self.session.project is None or self.session.folder is None:
            self.w.show_error("Open or create a project first (File → New project).")
            return False
        return True

    def _add_entries(self, entry_ids: list[str]) -> None:
        library = self.library_factory()
        last = ""
        for entry_id in entry_ids:
            project = add_library_character(self.session.project, self.session.folder, entry_id, library=library)
            character = project.characters[-1]
            error = push_command(self.w.undo_stack, self.session, AddCharacter(character),
                                 ProjectChange.of("character", character.id))
            if error:
                self.w.show_error(error)
                return
            last = character.id
        if last:
            self.session.select("character", last)

    def add(self) -> None:
        if not self._need_folder():
            return
        dialog = LibraryDialog(self.library_factory(), self.w)
        if dialog.exec() != LibraryDialog.DialogCode.Accepted:
            return
        self._add_entries(dialog.chosen_ids())

    def import_file(self) -> None:
        if not self._need_folder():
            return
        src, _ = QFileDialog.getOpenFileName(self.w, "Import a character", str(Path.home()),
                                             f"Characters (*{SUFFIX})")
        if not src:
            return
        entry = self.library_factory().import_file(src)
        self._add_entries([entry.id])
