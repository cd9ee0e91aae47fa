"""The main window: project browser (left), the editor of the selected item (centre), generation queue (right),
menus and a toolbar with standard shortcuts; window state and recent projects kept in ``Settings``.

Owns one ``QUndoStack`` per open project, the autosave timer, and the close protocol: with jobs running it asks,
then cancels and joins the worker (``JobQueue.shutdown``) before the window goes away.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QStackedWidget,
                               QWidget)

from app.app_session import AppSession
from app.settings import Settings
from ui.character_editor import CharacterEditor
from ui.generation_controller import GenerationController
from ui.image_cache import ImageCache
from ui.model_dialog import ModelDialog
from ui.page_editor import PageEditor
from ui.panel_editor import PanelEditor
from ui.project_browser import ProjectBrowser
from ui.project_files import ProjectFiles
from ui.queue_dock import QueueDock

__all__ = ["MainWindow", "WARM_UP_DELAY_MS"]

WARM_UP_DELAY_MS = 1500

_WELCOME = """<h2>Welcome to Consistory Studio</h2>
<p>Make a comic or picture book whose characters look the same in every picture:</p>
<ol>
<li><b>Add a character</b> (left, “+ Character”): give it a name, how it looks and the word panels use for it,
then <i>Generate anchors</i>.</li>
<li><b>Add panels</b>: write what happens, tick who is in it, press <i>Generate</i>.</li>
<li><b>Add a page</b>: pick a layout, drop panels into its slots, add speech balloons.</li>
<li><b>File → Export PDF</b> (Ctrl+E).</li>
</ol>
<p>Pictures are drawn in the background (right: the queue); you can keep editing meanwhile.</p>"""


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings, queue=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("main_window")
        self.settings = settings
        self.session = AppSession(self)
        self.undo_stack = QUndoStack(self)
        self.images = ImageCache()
        self._closing_confirmed = False
        self.last_message = ""

        self.queue_dock = QueueDock(self)
        self.generation = GenerationController(self.session, self.settings, self.queue_dock, queue, self,
                                               self.undo_stack)
        self.files = ProjectFiles(self)

        self.character_editor = CharacterEditor(self.session, self.undo_stack, self.images)
        self.panel_editor = PanelEditor(self.session, self.undo_stack, self.images)
        self.page_editor = PageEditor(self.session, self.undo_stack, self.images)
        self.welcome = QLabel(_WELCOME)
        self.welcome.setObjectName("welcome")
        self.welcome.setWordWrap(True)
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.welcome.setContentsMargins(24, 24, 24, 24)
        self.editors = QStackedWidget()
        for w in (self.welcome, self.character_editor, self.panel_editor, self.page_editor):
            self.editors.addWidget(w)
        self.setCentralWidget(self.editors)

        self.browser = ProjectBrowser(self.session, self.images, self.page_editor.thumbnail)
        self.browser_dock = QDockWidget("Project", self)
        self.browser_dock.setObjectName("browser_dock")
        self.browser_dock.setWidget(self.browser)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.browser_dock)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.queue_dock)

        self._build_actions()
        self._build_menus()
        self.statusBar().showMessage("Ready")

        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.files.autosave)
        self._apply_autosave_interval(settings.autosave_seconds)
        settings.autosave_seconds_changed.connect(self._apply_autosave_interval)

        self.session.selection_changed.connect(self._show_editor)
        self.session.project_changed.connect(self._on_project_changed)
        self.session.folder_changed.connect(lambda _f: self._update_title())
        self.session.modified_changed.connect(lambda _m: self._update_title())
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self.browser.add_requested.connect(self.files.add_item)
        self.character_editor.generate_anchors_requested.connect(self.generation.generate_anchors)
        self.character_editor.library_action_requested.connect(self.files.library_action)
        self.panel_editor.generate_requested.connect(self.generation.generate_panel)
        for editor in (self.character_editor, self.panel_editor, self.page_editor):
            editor.edit_refused.connect(self.show_status_error)
        self.generation.anchors_ready.connect(self._on_anchors_ready)
        self.character_editor.current_model = self.generation.current_model_source
        self.panel_editor.model_source = self.generation.model_source
        self.files.wire_library_buttons(self.character_editor.library_buttons)
        self.generation.job_done.connect(lambda: self.files.autosave())
        self.queue_dock.fix_requested.connect(self._on_fix)
        self.generation.error.connect(self.show_error)

        self.resize(1280, 800)
        if settings.window_geometry:
            self.restoreGeometry(QByteArray(settings.window_geometry))
        if settings.window_state:
            self.restoreState(QByteArray(settings.window_state))
        self._update_title()
        self._show_editor("", "")
        # Import torch/diffusers on the idle worker soon after the window is up, not when the first job starts.
        QTimer.singleShot(WARM_UP_DELAY_MS, self, self.generation.queue.warm_up)

    # -- actions and menus -------------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, name: str = "", tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if name:
            action.setObjectName(name)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(lambda _=False: slot())
        return action

    def _build_actions(self) -> None:
        f = self.files
        self.new_action = self._action("&New project…", f.new_project, QKeySequence.StandardKey.New, "action_new")
        self.open_action = self._action("&Open project…", f.open_dialog, QKeySequence.StandardKey.Open,
                                        "action_open")
        self.save_action = self._action("&Save", f.save, QKeySequence.StandardKey.Save, "action_save")
        self.save_as_action = self._action("Save &as…", f.save_as, QKeySequence.StandardKey.SaveAs)
        self.export_action = self._action("&Export PDF…", f.export_dialog, "Ctrl+E", "action_export",
                                          "Write the book as a print-ready PDF")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.undo_action = self.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.setObjectName("action_undo")
        self.redo_action = self.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence.StandardKey.Redo])
        self.redo_action.setObjectName("action_redo")
        self.add_character_action = self._action("Add &character", lambda: f.add_item("character"),
                                                 "Ctrl+Shift+C", "action_add_character")
        self.add_panel_action = self._action("Add &panel", lambda: f.add_item("panel"), "Ctrl+Shift+P",
                                             "action_add_panel")
        self.add_page_action = self._action("Add pa&ge", lambda: f.add_item("page"), "Ctrl+Shift+G",
                                            "action_add_page")
        self.delete_action = self._action("&Delete selected", f.delete_selected, QKeySequence.StandardKey.Delete)
        self.generate_action = self._action("&Generate selected", self.generation.generate_selected, "Ctrl+G",
                                            "action_generate", "Draw the selected panel or character's anchors")
        self.generate_all_action = self._action("Generate &all missing", self.generation.generate_missing,
                                                "Ctrl+Shift+Return", "action_generate_all")
        self.model_action = self._action("&Model…", self.open_model_dialog, None, "action_model",
                                         "Choose the model, device and precision")

    def _build_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addActions([self.new_action, self.open_action])
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addSeparator()
        m.addActions([self.save_action, self.save_as_action, self.export_action])
        m.addSeparator()
        m.addAction(self.quit_action)
        m = bar.addMenu("&Edit")
        m.addActions([self.undo_action, self.redo_action])
        m.addSeparator()
        m.addAction(self.delete_action)
        m = bar.addMenu("&Project")
        m.addActions([self.add_character_action, self.add_panel_action, self.add_page_action])
        m.addSeparator()
        m.addActions([self.generate_action, self.generate_all_action])
        self.library_menu = m.addMenu("Character &library")
        self.files.fill_library_menu(self.library_menu)
        m = bar.addMenu("&Model")
        m.addAction(self.model_action)
        m = bar.addMenu("&View")
        m.addActions([self.browser_dock.toggleViewAction(), self.queue_dock.toggleViewAction()])
        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.addActions([self.new_action, self.open_action, self.save_action])
        tb.addSeparator()
        tb.addActions([self.undo_action, self.redo_action])
        tb.addSeparator()
        tb.addActions([self.add_character_action, self.add_panel_action, self.add_page_action])
        tb.addSeparator()
        tb.addActions([self.generate_action, self.export_action, self.model_action])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_projects
        if not recent:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        for folder in recent:
            self.recent_menu.addAction(folder, lambda f=folder: self.files.open_recent(f))

    # -- state ---------------------------------------------------------------------------------------------------
    def _show_editor(self, kind: str, item_id: str) -> None:
        if kind == "character" and self.session.character(item_id) is not None:
            self.character_editor.set_character(item_id)
            self.editors.setCurrentWidget(self.character_editor)
        elif kind == "panel" and self.session.panel(item_id) is not None:
            self.panel_editor.set_panel(item_id)
            self.editors.setCurrentWidget(self.panel_editor)
        elif kind == "page" and self.session.page(item_id) is not None:
            self.page_editor.set_page(item_id)
            self.editors.setCurrentWidget(self.page_editor)
        else:
            self.editors.setCurrentWidget(self.welcome)
        has_project = self.session.project is not None
        for a in (self.save_action, self.save_as_action, self.export_action, self.add_character_action,
                  self.add_panel_action, self.add_page_action, self.generate_all_action):
            a.setEnabled(has_project)
        self.generate_action.setEnabled(kind in ("character", "panel"))
        self.delete_action.setEnabled(kind in ("character", "panel", "page"))

    def _on_project_changed(self, _project) -> None:
        self.undo_stack.clear()
        self._show_editor(*self.session.selection)

    def _on_clean_changed(self, clean: bool) -> None:
        self.session.set_modified(not clean)

    def _on_anchors_ready(self, character_id: str) -> None:
        self.browser.refresh(frozenset({"character"}))
        if self.character_editor.character_id == character_id:
            self.character_editor.refresh_anchors()

    def _update_title(self) -> None:
        p = self.session.project
        name = p.title if p is not None else "no project"
        mark = "*" if self.session.modified else ""
        self.setWindowTitle(f"{name}{mark} — Consistory Studio")

    def _apply_autosave_interval(self, seconds: int) -> None:
        if seconds > 0:
            self.autosave_timer.start(seconds * 1000)
        else:
            self.autosave_timer.stop()

    def show_error(self, message: str) -> None:
        """A problem the user must read: a window-modal box that does not block the event loop."""
        self.statusBar().showMessage(message, 15000)
        self.show_info("Consistory Studio", message, QMessageBox.Icon.Warning)

    def show_info(self, title: str, text: str, icon=QMessageBox.Icon.Information) -> QMessageBox:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("message_box")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_message = text
        return box

    def show_status_error(self, message: str) -> None:
        """A refused keystroke-level edit: said in the status bar, no dialog in the way of typing."""
        self.last_message = message
        self.statusBar().showMessage(message, 15000)

    def open_model_dialog(self) -> bool:
        dialog = ModelDialog(self.settings, self)
        accepted = dialog.exec() == ModelDialog.DialogCode.Accepted
        if accepted:
            self.generation.apply_model_settings()
            self.character_editor.refresh_anchors()
        return accepted

    def _on_fix(self, action: str) -> None:
        if action == "open_model_dialog":
            self.open_model_dialog()
        elif action == "use_less_memory":  # tiled decoding helps on every device, offload on NVIDIA GPUs
            self.settings.vae_tiling = True
            self.settings.cpu_offload = True
            self.generation.apply_model_settings()
            self.statusBar().showMessage("Tiled decoding is on (and CPU offload, on an NVIDIA GPU); generate again.",
                                         10000)

    # -- closing ---------------------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self._closing_confirmed:
            if self.generation.busy():
                answer = QMessageBox.question(
                    self, "Pictures are being drawn",
                    "Pictures are still being drawn. Stop them and quit? Finished pictures are kept.",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
                if answer != QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return
            if not self.files.maybe_save():
                event.ignore()
                return
        self._closing_confirmed = True
        self.settings.window_geometry = bytes(self.saveGeometry().data())
        self.settings.window_state = bytes(self.saveState().data())
        self.settings.sync()
        self.autosave_timer.stop()
        self.generation.shutdown()
        event.accept()

    def confirm_close_without_asking(self) -> None:
        """For scripted shutdowns (tests, benches): close without questions (jobs are cancelled)."""
        self._closing_confirmed = True
        self.close()

