"""Saving keeps one backup and an autosave for recovery; every bad project folder is refused with a clear error and
nothing on disk changes (including a property test over random JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.assets import write_asset
from app.commands import EditPanel
from app.project_codec import project_from_dict, project_to_dict
from app.project_model import BookSettings, Character, Panel, Project, ProjectError
from app.project_store import (AUTOSAVE_FILE, BACKUP_FILE, PROJECT_FILE, autosave, discard_autosave, open_backup,
                               open_project, recover, recovery_available, save_project)

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels"


def snapshot(folder: Path) -> dict[str, object]:
    """Every entry under ``folder``: file bytes and mode, link targets, directories."""
    out: dict[str, object] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
    return out


def make_project(folder: Path) -> Project:
    asset = write_asset(folder, PNG, {"recipe": {}})
    return Project(title="T", book=BookSettings(title="B"),
                   characters=(Character("mira", "Mira", "a red fox", ("fox",)),),
                   panels=(Panel("p1", "a fox", ("mira",), alternates=(asset,), current=asset),
                           Panel("p2", "a lake")))


def test_save_keeps_the_previous_file_as_backup(tmp_path):
    p1 = make_project(tmp_path)
    save_project(p1, tmp_path)
    first = (tmp_path / PROJECT_FILE).read_bytes()
    p2 = EditPanel("p2", text="a calm lake").do(p1)
    save_project(p2, tmp_path)
    assert (tmp_path / BACKUP_FILE).read_bytes() == first
    assert open_project(tmp_path) == p2 and open_backup(tmp_path) == p1
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(["assets", BACKUP_FILE, PROJECT_FILE])  # no temp files


def test_autosave_offers_recovery_until_saved_or_discarded(tmp_path):
    p1 = make_project(tmp_path)
    save_project(p1, tmp_path)
    assert not recovery_available(tmp_path)
    autosave(p1, tmp_path)
    assert not recovery_available(tmp_path)  # same content as project.json: nothing to recover
    p2 = EditPanel("p2", text="edited, not saved").do(p1)
    autosave(p2, tmp_path)
    assert recovery_available(tmp_path)
    before = snapshot(tmp_path)
    assert recover(tmp_path) == p2
    assert snapshot(tmp_path) == before  # recovering reads only
    save_project(recover(tmp_path), tmp_path)
    assert not recovery_available(tmp_path) and not (tmp_path / AUTOSAVE_FILE).exists()
    assert open_project(tmp_path) == p2
    autosave(p1, tmp_path)
    discard_autosave(tmp_path)
    assert not recovery_available(tmp_path)


def test_autosave_older_than_the_project_is_not_offered(tmp_path):
    p1 = make_project(tmp_path)
    save_project(p1, tmp_path)
    autosave(EditPanel("p2", text="old autosave").do(p1), tmp_path)
    old = (tmp_path / PROJECT_FILE).stat().st_mtime_ns - 10**9
    os.utime(tmp_path / AUTOSAVE_FILE, ns=(old, old))
    assert not recovery_available(tmp_path)


def _write(folder: Path, data: bytes | dict) -> None:
    (folder / PROJECT_FILE).write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())


def _doc(folder: Path) -> dict:
    return project_to_dict(make_project(folder))


def _outside_link(folder: Path, rel: str) -> None:
    outside = folder.parent / f"outside-{folder.name}"
    outside.mkdir(exist_ok=True)
    (outside / "secret.png").write_bytes(PNG)
    target = folder / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    target.symlink_to(outside / "secret.png")


def _case_symlinked_asset(folder: Path) -> None:
    doc = _doc(folder)
    _write(folder, doc)
    _outside_link(folder, f"assets/{doc['panels'][0]['current']}.png")


def _case_symlinked_identity(folder: Path) -> None:
    doc = _doc(folder)
    doc["characters"][0]["identity_file"] = "characters/mira.character"
    _write(folder, doc)
    _outside_link(folder, "characters/mira.character")


def _case_missing(folder: Path) -> None:
    doc = _doc(folder)
    _write(folder, doc)
    (folder / "assets" / f"{doc['panels'][0]['current']}.png").unlink()


def _with(**edits):
    def case(folder: Path) -> None:
        doc = _doc(folder)
        for path, value in edits.items():
            obj = doc
            *head, last = path.split("__")
            for k in head:
                obj = obj[int(k)] if k.isdigit() else obj[k]
            obj[int(last) if last.isdigit() else last] = value
        _write(folder, doc)
    return case


BAD_FOLDERS = {
    "truncated json": (lambda f: _write(f, json.dumps(_doc(f)).encode()[:-40]), "project.json: the file is damaged: "),
    "not utf-8": (lambda f: _write(f, b"\xff\xfe{}"), "project.json: the file is damaged: it is not UTF-8 text"),
    "NaN number": (lambda f: _write(f, json.dumps(_doc(f)).replace('"seed": 0', '"seed": NaN', 1).encode()),
                   "project.json: the file is damaged: NaN is not a valid number"),
    "wrong type": (_with(panels__1__width="wide"), 'panels[1].width: expected a multiple of 16 between 16'),
    "newer schema": (_with(schema_version=99), "schema_version: this project was made by a newer version of "
                                                "Consistory Studio (schema 99, this app reads up to 2); update"),
    "missing asset": (_case_missing, "assets: 1 file(s) the project uses are missing: assets/"),
    "asset path traversal": (_with(panels__0__alternates__0="../../etc/passwd.png"),
                             "panels[0].alternates[0]: asset references must stay inside the project folder"),
    "absolute asset path": (_with(panels__0__current="/etc/passwd"),
                            "panels[0].current: asset references must stay inside the project folder, got the "
                            "absolute path"),
    "absolute identity file": (_with(characters__0__identity_file="/home/me/mira.character"),
                               "characters[0].identity_file: file references must be relative paths"),
    "identity file with ..": (_with(characters__0__identity_file="characters/../../x.character"),
                              "characters[0].identity_file: file references must stay inside"),
    "asset linked outside": (_case_symlinked_asset, "panels[0].alternates[0]: the image "),
    "identity linked outside": (_case_symlinked_identity, "characters[0].identity_file: the identity file "),
    "not a project": (lambda f: _write(f, {"format": "something-else"}), "format: this is not a Consistory"),
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_project_folder_gives_a_clear_error_and_changes_nothing(tmp_path, case):
    folder = tmp_path / "proj"
    folder.mkdir()
    make, expected = BAD_FOLDERS[case]
    make(folder)
    before = snapshot(tmp_path)
    with pytest.raises(ProjectError) as info:
        open_project(folder)
    assert expected in str(info.value), str(info.value)
    assert snapshot(tmp_path) == before
    assert not recovery_available(folder)
    assert snapshot(tmp_path) == before


def test_damaged_project_points_to_the_backup(tmp_path):
    p1 = make_project(tmp_path)
    save_project(p1, tmp_path)
    save_project(EditPanel("p2", text="second").do(p1), tmp_path)
    (tmp_path / PROJECT_FILE).write_bytes(b'{"format": ')
    with pytest.raises(ProjectError, match="the app offers to open it"):
        open_project(tmp_path)
    assert open_backup(tmp_path) == p1


def test_open_with_missing_images_allowed_still_refuses_links_out(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    _case_missing(folder)
    assert open_project(folder, allow_missing=True).panels[0].current is not None
    _case_symlinked_identity(folder)
    with pytest.raises(ProjectError, match="leads out of the project folder"):
        open_project(folder, allow_missing=True)


# ---------------------------------------------------------------------------------------- property tests
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


VALID = project_to_dict(Project(
    title="T", book=BookSettings(title="B"), characters=(Character("mira", "Mira", "a red fox", ("fox",)),),
    panels=(Panel("p1", "a fox", ("mira",)),)))
VALID["pages"] = [{"id": "pg", "layout": "2x2", "gutter_in": None, "slots": [{"panel_id": "p1"}],
                   "balloons": [{"id": "b", "kind": "speech", "text": "hi", "x": 0.1, "y": 0.1, "w": 0.2, "h": 0.1}]}]
ALL_PATHS = list(_paths(VALID))


def _replace(doc, path, value):
    doc = json.loads(json.dumps(doc))
    if not path:
        return value
    obj = doc
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value
    return doc


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.tuples(st.sampled_from(ALL_PATHS), json_values).map(
    lambda pv: _replace(VALID, pv[0], pv[1]))))
def test_random_json_never_crashes_with_anything_but_project_error(doc):
    try:
        project = project_from_dict(doc)
    except ProjectError as exc:
        assert str(exc)
    else:
        assert project_from_dict(project_to_dict(project)) == project


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.tuples(st.sampled_from(ALL_PATHS), json_values))
def test_random_project_file_never_writes_to_the_folder(tmp_path, path_value):
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    (folder / PROJECT_FILE).write_text(json.dumps(_replace(VALID, *path_value)), encoding="utf-8")
    before = snapshot(folder)
    try:
        open_project(folder)
    except ProjectError:
        pass
    recovery_available(folder)
    assert snapshot(folder) == before
