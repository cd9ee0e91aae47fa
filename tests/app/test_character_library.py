"""The character library on disk: list/import/export/rename/delete/restore round trips, refusal of bad files with
one sentence and nothing lost, and re-creating a character's anchors on another model."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from app import user_dirs
from app.character_library import CharacterLibrary, LibraryError, slugify
from app.project_model import MAX_CHARACTER_NAME
from engine.identity import Identity, IdentityError, read_identity, write_identity


def make_identity(name: str = "Mira", fingerprint: str = "fp-one", seeds: tuple[int, int] = (1, 2)) -> Identity:
    return Identity(name=name, description="a small red fox", subjects=("fox",),
                    anchor_prompts=("a red fox", "a red fox running"), anchor_seeds=seeds,
                    config={"dropout": 0.5}, scheduler="ddim", steps=2, width=64, height=64, guidance=5.0,
                    model={"fingerprint": fingerprint, "source": "tiny", "family": "sdxl"}, versions={},
                    anchor_images=(Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")),
                    noise=torch.arange(2 * 4 * 32 * 32, dtype=torch.float32).reshape(2, 4, 32, 32) / 1000)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def lib() -> CharacterLibrary:
    return CharacterLibrary()


def test_library_lives_in_the_user_data_dir_and_import_export_round_trip(lib, tmp_path):
    assert lib.folder == user_dirs.library_dir() and lib.list() == []
    src = write_identity(make_identity(), tmp_path / "mira.character")
    entry = lib.import_file(src)
    assert entry.id == f"mira-{hashlib.sha256(src.read_bytes()).hexdigest()[:8]}"
    assert entry.path == user_dirs.library_dir() / f"{entry.id}.character"
    assert entry.path.read_bytes() == src.read_bytes()  # copied as is
    assert (entry.name, entry.subjects, entry.anchors, entry.model_source, entry.model_fingerprint, entry.error) \
        == ("Mira", ("fox",), 2, "tiny", "fp-one", None)
    assert Image.open(io.BytesIO(entry.thumbnail_png)).getpixel((0, 0)) == (255, 0, 0)  # first anchor
    assert lib.import_file(src) == entry and len(lib.list()) == 1  # the very same file: no duplicate
    (tmp_path / "out").mkdir()
    out = lib.export("mira", tmp_path / "out")  # a folder: named after the character
    assert out == tmp_path / "out" / "mira.character" and out.read_bytes() == src.read_bytes()
    again = read_identity(lib.export(entry.id, tmp_path / "copy.character"))
    assert again == make_identity() and torch.equal(again.noise, make_identity().noise)


def test_name_clash_gets_a_free_name_and_rename_keeps_the_id(lib, tmp_path):
    first = lib.import_file(write_identity(make_identity(), tmp_path / "a.character"))
    before = first.path.read_bytes()
    second = lib.import_file(write_identity(make_identity(seeds=(3, 4)), tmp_path / "b.character"))
    third = lib.import_file(write_identity(make_identity("MIRA", seeds=(5, 6)), tmp_path / "c.character"))
    assert [e.name for e in lib.list()] == ["Mira", "Mira (2)", "MIRA (3)"]  # names clash case-insensitively
    assert first.path.read_bytes() == before and len({first.id, second.id, third.id}) == 3
    renamed = lib.rename(second.id, "  Foxy   the  fox ")
    assert (renamed.id, renamed.name, renamed.path) == (second.id, "Foxy the fox", second.path)
    assert read_identity(second.path).anchor_seeds == (3, 4)
    with pytest.raises(LibraryError, match=r"^There is already a character named 'mira' in the library\. Choose"):
        lib.rename(third.id, "mira")
    assert lib.rename(third.id, "x" * MAX_CHARACTER_NAME).name == "x" * MAX_CHARACTER_NAME  # what a project holds
    for bad, message in (("", "needs a name"), ("x" * (MAX_CHARACTER_NAME + 1), "too long"),
                         ("a\x00b", "control characters")):
        with pytest.raises(LibraryError, match=message):
            lib.rename(third.id, bad)
    lib.rename(third.id, "MIRA (3)")
    assert [e.name for e in lib.list()] == ["Foxy the fox", "Mira", "MIRA (3)"]
    assert lib.find("foxy THE fox").id == second.id and lib.find(third.id).name == "MIRA (3)"
    assert slugify("Élodie the Fox!") == "elodie-the-fox" and slugify("???") == "character"


def test_delete_to_trash_restore_and_empty(lib, tmp_path):
    entry = lib.import_file(write_identity(make_identity(), tmp_path / "a.character"))
    data = entry.path.read_bytes()
    gone = lib.delete(entry.id)
    assert lib.list() == [] and [e.id for e in lib.trash()] == [entry.id] and gone.path.read_bytes() == data
    with pytest.raises(LibraryError, match=rf"There is no character '{entry.id}' in the library\."):
        lib.delete(entry.id)
    newer = lib.import_file(write_identity(make_identity(seeds=(7, 8)), tmp_path / "b.character"))
    assert newer.name == "Mira"  # the deleted one does not hold its name
    back = lib.restore(entry.id)
    assert (back.id, back.name) == (entry.id, "Mira (2)") and lib.trash() == []
    assert read_identity(back.path).anchor_seeds == (1, 2)
    with pytest.raises(LibraryError, match=rf"There is no character '{entry.id}' in the trash\."):
        lib.restore(entry.id)
    lib.delete(newer.id)
    assert lib.empty_trash() == 1 and lib.trash() == [] and [e.id for e in lib.list()] == [entry.id]
    with pytest.raises(LibraryError, match=r"'\.\./x' is not a character id"):
        lib.delete("../x")


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _members(identity: Identity, tmp_path: Path) -> dict[str, bytes]:
    good = write_identity(identity, tmp_path / "good.character")
    with zipfile.ZipFile(good) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_bad_files_are_refused_with_one_sentence_and_nothing_changes(lib, tmp_path):
    kept = lib.import_file(write_identity(make_identity("Bo"), tmp_path / "bo.character"))
    before = snapshot(lib.folder)
    good = _members(make_identity(), tmp_path)
    meta = json.loads(good["identity.json"])
    cases = {
        "pickle.character": ({**good, "noise.pkl": b"\x80\x04K\x01."}, "unexpected file 'noise.pkl'.*pickles"),
        "escape.character": ({**good, "anchors/../../evil.png": b"x"}, "unsafe path"),
        "newer.character": ({**good, "identity.json": json.dumps({**meta, "schema_version": 99}).encode()},
                            "made by a newer version.*Update the app"),
        "unknown.character": ({**good, "identity.json": json.dumps({**meta, "schema_version": "v1"}).encode()},
                              "invalid schema version 'v1'"),
        "other.character": ({**good, "identity.json": json.dumps({**meta, "format": "x"}).encode()},
                            "is not a Consistory Studio character"),
        "nojson.character": ({k: v for k, v in good.items() if k != "identity.json"}, "has no identity.json"),
    }
    for name, (members, message) in cases.items():
        with pytest.raises(LibraryError, match=rf"^{name} cannot be imported: .*{message}"):
            lib.import_file(_zip(tmp_path / name, members))
    (tmp_path / "corrupt.character").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(LibraryError, match=r"corrupt.character cannot be imported: .*not a valid zip"):
        lib.import_file(tmp_path / "corrupt.character")
    with pytest.raises(LibraryError, match=r"^The file .*missing.character does not exist\. Check the path"):
        lib.import_file(tmp_path / "missing.character")
    with pytest.raises(LibraryError, match=r"is not a file\. Choose a \.character file\."):
        lib.import_file(tmp_path)
    with pytest.raises(LibraryError, match=r"^There is no character named or with id 'nobody' in the library\."):
        lib.export("nobody", tmp_path / "x.character")
    with pytest.raises(LibraryError, match=r"^The folder .*/no does not exist\. Create it"):
        lib.export(kept.id, tmp_path / "no" / "x.character")
    (tmp_path / "taken.character").write_bytes(b"mine")
    with pytest.raises(LibraryError, match=r"taken.character already exists\. Choose another file name"):
        lib.export("Bo", tmp_path / "taken.character")
    assert (tmp_path / "taken.character").read_bytes() == b"mine"
    assert snapshot(lib.folder) == before and [e.name for e in lib.list()] == ["Bo"]


def test_a_damaged_library_file_is_listed_not_fatal(lib, tmp_path):
    lib.import_file(write_identity(make_identity(), tmp_path / "a.character"))
    (lib.folder / "broken-0000.character").write_bytes(b"garbage")
    (lib.folder / "notes.txt").write_text("ignored")
    entries = {e.id: e for e in lib.list()}
    assert set(entries) == {"broken-0000", next(i for i in entries if i.startswith("mira-"))}
    assert "not a valid zip" in entries["broken-0000"].error
    with pytest.raises(LibraryError, match=r"The character 'broken-0000' cannot be read: .*not a valid zip"):
        lib.load("broken-0000")


def test_disk_errors_are_one_sentence(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the library folder should be")
    lib = CharacterLibrary(blocker)
    src = write_identity(make_identity(), tmp_path / "a.character")
    for action in (lib.list, lambda: lib.import_file(src)):
        with pytest.raises(LibraryError, match=r"^Could not read the character library folder .*/blocked: Not a "
                                               r"directory\. Check that it is a folder you can read\.$"):
            action()
    lib = CharacterLibrary(tmp_path / "lib")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / ".trash").write_text("in the way")
    with pytest.raises(LibraryError, match=r"^Could not create the character library folder .*: .*Check that the "
                                           r"disk has room and the folder is writable\.$"):
        lib.import_file(src)
    assert lib.list() == [] and blocker.read_text().startswith("a file")


def test_a_character_from_another_model_is_refused_until_recreated(lib, tmp_path, tiny_sdxl):
    from dataclasses import replace

    entry = lib.import_file(write_identity(replace(make_identity(fingerprint="someone-elses-model"),
                                                   negative_prompt="blurry"), tmp_path / "a.character"))
    data = entry.path.read_bytes()
    with pytest.raises(LibraryError, match=r"^The character 'Mira' was made with another model \(tiny, fingerprint "
                                           r"someone-elses-model\); the current model is tiny .*'consistory-studio "
                                           rf"character recreate {entry.id}'"):
        lib.check_model(entry.id, tiny_sdxl)
    assert entry.path.read_bytes() == data
    lib.check_model(lib.import_file(write_identity(make_identity("Same", tiny_sdxl.fingerprint),
                                                   tmp_path / "b.character")).id, SimpleNamespace(
        fingerprint=tiny_sdxl.fingerprint, source="tiny"))  # same fingerprint: accepted
    steps = []
    new = lib.recreate(entry.id, tiny_sdxl, on_step=lambda info: steps.append(info.step))
    assert steps and (new.id, new.name, new.model_fingerprint) == (entry.id, "Mira", tiny_sdxl.fingerprint)
    made = lib.load(entry.id)
    assert (made.anchor_prompts, made.anchor_seeds, made.description, made.steps, made.width) == \
        (("a red fox", "a red fox running"), (1, 2), "a small red fox", 2, 64)
    assert made.negative_prompt == "blurry"  # the anchors, and the panels drawn after them, avoid it as before
    assert made.noise.shape == (2, 4, 32, 32) and len(made.anchor_images) == 2
    lib.check_model(entry.id, tiny_sdxl)  # now usable
    (old,) = lib.trash()
    assert old.id.startswith(f"{entry.id}-old-") and old.path.read_bytes() == data  # nothing lost
    assert lib.restore(old.id).name == "Mira (2)"


def test_a_file_damaged_inside_its_zip_is_listed_with_the_reason_and_can_go_to_the_trash(lib, tmp_path):
    good = lib.import_file(write_identity(make_identity(), tmp_path / "a.character"))
    damaged = lib.folder / "damaged.character"
    data = bytearray(good.path.read_bytes())
    with zipfile.ZipFile(good.path) as zf:
        info = zf.getinfo("identity.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # the member's data
    data[start + 5] ^= 0xFF  # the zip's index is intact; the member's bytes (so its CRC or its stream) are not
    damaged.write_bytes(bytes(data))
    with pytest.raises(IdentityError, match="damaged.character is damaged: identity.json cannot be read"):
        read_identity(damaged)
    entries = {e.id: e for e in lib.list()}  # listing does not stop at the damaged file
    assert entries[good.id].error is None and "identity.json cannot be read" in entries["damaged"].error
    lib.delete("damaged")
    assert [e.id for e in lib.trash()] == ["damaged"] and [e.id for e in lib.list()] == [good.id]


def test_a_character_the_project_rules_refuse_is_not_copied_into_the_project(lib, tmp_path):
    """The engine takes a subject of two words; a project's characters take one: refused before any copy."""
    from dataclasses import replace

    from app.character_identity import add_library_character
    from app.project_model import BookSettings, Project, ProjectError

    teddy = replace(make_identity("Teddy"), subjects=("teddy bear",), description="a teddy bear",
                    anchor_prompts=("a teddy bear", "a teddy bear sitting"))
    entry = lib.import_file(write_identity(teddy, tmp_path / "t.character"))
    folder = tmp_path / "book"
    folder.mkdir()
    project = Project(title="T", book=BookSettings(title="T"))
    with pytest.raises(ProjectError, match=r"^'Teddy' cannot be added to a project: characters\[0\]\.subjects"):
        add_library_character(project, folder, entry.id, library=lib)
    assert list(folder.iterdir()) == []
    mira = lib.import_file(write_identity(make_identity(), tmp_path / "m.character"))
    added = add_library_character(project, folder, mira.id, library=lib)
    assert (folder / added.characters[0].identity_file).read_bytes() == mira.path.read_bytes()


def test_adding_a_renamed_library_character_again_never_rewrites_the_first_copy(lib, tmp_path):
    """The library keeps an entry's id through a rename (and a re-creation): the second copy gets its own file,
    the first character keeps drawing with the anchors it was added with."""
    from app.character_identity import add_library_character, character_identity
    from app.project_model import BookSettings, Project

    folder = tmp_path / "book"
    folder.mkdir()
    mira = lib.import_file(write_identity(make_identity(), tmp_path / "m.character"))
    project = add_library_character(Project(title="T", book=BookSettings(title="T")), folder, mira.id, library=lib)
    first = project.characters[0]
    first_bytes = (folder / first.identity_file).read_bytes()
    assert first.identity_file == f"characters/{mira.id}.character"

    again = add_library_character(project, folder, mira.id, library=lib)  # the same bytes: the same file
    assert again.characters[1].identity_file == first.identity_file

    assert lib.rename(mira.id, "Mira B").id == mira.id
    project = add_library_character(project, folder, mira.id, library=lib)
    second = project.characters[1]
    assert second.identity_file != first.identity_file and second.identity_file.startswith(f"characters/{mira.id}-")
    assert (folder / first.identity_file).read_bytes() == first_bytes
    assert character_identity(project, folder, first.id).name == "Mira"
    assert character_identity(project, folder, second.id).name == "Mira B"
