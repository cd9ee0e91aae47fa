"""``consistory-studio``'s first argument: a sub-command runs headless, a folder (bare or after ``--gui``) opens the
app on it, anything else is refused with one sentence before Qt or a model loads."""

from __future__ import annotations

import app.cli
import ui.app_main
from ui.launch import main


def _record(monkeypatch):
    calls = []
    monkeypatch.setattr(ui.app_main, "run", lambda argv: calls.append(("gui", list(argv))) or 0)
    monkeypatch.setattr(app.cli, "main", lambda argv: calls.append(("cli", list(argv))) or 0)
    return calls


def test_a_project_folder_opens_the_app_on_it(monkeypatch, tmp_path):
    calls = _record(monkeypatch)
    assert main([str(tmp_path)]) == 0
    assert main(["--gui", str(tmp_path)]) == 0
    assert main([]) == 0
    assert calls == [("gui", [str(tmp_path)]), ("gui", [str(tmp_path)]), ("gui", [])]


def test_sub_commands_and_options_run_headless(monkeypatch, tmp_path):
    calls = _record(monkeypatch)
    (tmp_path / "render").mkdir()  # a folder named like a command does not shadow it
    monkeypatch.chdir(tmp_path)
    assert main(["render", "p", "--out", "b.pdf"]) == 0
    assert main(["--help"]) == 0
    assert calls == [("cli", ["render", "p", "--out", "b.pdf"]), ("cli", ["--help"])]


def test_a_word_that_is_neither_a_command_nor_a_folder_is_refused(monkeypatch, tmp_path, capsys):
    calls = _record(monkeypatch)
    assert main([str(tmp_path / "no-such-book")]) == 2
    assert calls == []
    err = capsys.readouterr().err
    assert "no-such-book" in err and "neither a command (generate, render, character) nor a project folder" in err
