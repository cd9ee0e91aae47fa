"""``consistory-studio character``: every verb through ``app.cli.main``, its output, and one-line errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from app import user_dirs
from app.cli import main
from engine.identity import Identity, read_identity, write_identity


def character_file(path: Path, name: str, subject: str = "fox", seed: int = 1) -> Path:
    ident = Identity(name=name, description=f"a {subject}", subjects=(subject,), anchor_prompts=(f"a {subject}",),
                     anchor_seeds=(seed,), config={}, scheduler="ddim", steps=2, width=64, height=64, guidance=5.0,
                     model={"fingerprint": "0123456789abcdef", "source": "tiny"}, versions={},
                     anchor_images=(Image.new("RGB", (64, 64), "green"),), noise=torch.zeros(1, 4, 32, 32))
    return write_identity(ident, path)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["character", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_every_verb_round_trips(tmp_path, capsys):
    assert cli(capsys, "list") == (0, f"The character library is empty ({user_dirs.library_dir()}).\n", "")
    rc, out, _ = cli(capsys, "import", str(character_file(tmp_path / "m.character", "Mira")))
    mira = out.split(" as ")[1].rstrip(".\n")
    assert rc == 0 and out == f"Imported 'Mira' as {mira}.\n" and mira.startswith("mira-")
    cli(capsys, "import", str(character_file(tmp_path / "b.character", "Bo", "bear", 2)))
    rc, out, _ = cli(capsys, "list")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == ["ID", "NAME", "SUBJECTS", "ANCHORS", "MODEL", "SIZE"]
    assert [line.split()[1:5] for line in lines[1:]] == [["Bo", "bear", "1", "tiny"], ["Mira", "fox", "1", "tiny"]]
    assert "(01234567)" in lines[1]
    rc, out, _ = cli(capsys, "list", "--json")
    listed = json.loads(out)
    assert [(e["name"], e["subjects"], e["anchors"], e["model_fingerprint"]) for e in listed] == \
        [("Bo", ["bear"], 1, "0123456789abcdef"), ("Mira", ["fox"], 1, "0123456789abcdef")]
    assert Path(listed[1]["path"]) == user_dirs.library_dir() / f"{mira}.character"
    assert cli(capsys, "rename", mira, "Mira Fox") == (0, f"Renamed {mira} to 'Mira Fox'.\n", "")
    dest = tmp_path / "exported.character"
    assert cli(capsys, "export", "mira fox", str(dest)) == (0, f"Exported to {dest}.\n", "")
    assert read_identity(dest).name == "Mira Fox"
    rc, out, err = cli(capsys, "export", "Mira Fox", str(dest))
    assert (rc, out) == (2, "") and err == f"error: {dest} already exists. Choose another file name, or pass --force.\n"
    assert cli(capsys, "export", "--force", mira, str(dest))[0] == 0
    rc, out, _ = cli(capsys, "delete", mira)
    assert out == f"Moved 'Mira Fox' ({mira}) to the trash; 'character restore {mira}' brings it back.\n"
    assert [e["name"] for e in json.loads(cli(capsys, "list", "--json")[1])] == ["Bo"]
    rc, out, _ = cli(capsys, "trash")
    assert out.splitlines()[1].split()[:3] == [mira, "Mira", "Fox"]
    assert cli(capsys, "restore", mira) == (0, f"Restored 'Mira Fox' ({mira}).\n", "")
    assert cli(capsys, "trash") == (0, "The trash is empty.\n", "")
    bo = listed[0]["id"]
    cli(capsys, "delete", bo)
    assert cli(capsys, "trash", "--empty") == (0, "Deleted 1 character(s) for good.\n", "")
    assert [e["id"] for e in json.loads(cli(capsys, "list", "--json")[1])] == [mira]


@pytest.mark.parametrize("argv, message", [
    (("delete", "nobody"), "There is no character 'nobody' in the library. Use an id shown by 'consistory-studio "
                           "character list'."),
    (("restore", "nobody"), "There is no character 'nobody' in the trash. Use an id shown by 'consistory-studio "
                            "character trash'."),
    (("rename", "nobody", "X"), "There is no character 'nobody' in the library. Use an id shown by "
                                "'consistory-studio character list'."),
    (("export", "nobody", "/tmp"), "There is no character named or with id 'nobody' in the library. Use a name or "
                                   "id shown by 'consistory-studio character list'."),
    (("recreate", "nobody"), "There is no character 'nobody' in the library. Use an id shown by "
                             "'consistory-studio character list'."),
    (("recreate", "nobody", "--steps", "0"), "--steps must be between 1 and 1000."),
    ((), "choose what to do: list, import, export, rename, delete, restore, trash or recreate."),
])
def test_mistakes_print_one_line_and_exit_2(capsys, argv, message):
    assert cli(capsys, *argv) == (2, "", f"error: {message}\n")


def test_bad_import_files_print_one_line_and_leave_the_library_alone(tmp_path, capsys):
    good = character_file(tmp_path / "good.character", "Mira")
    cli(capsys, "import", str(good))
    before = sorted(p.name for p in user_dirs.library_dir().rglob("*"))
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    evil = tmp_path / "evil.character"
    with zipfile.ZipFile(evil, "w") as zf:
        for n, data in {**members, "model.pkl": b"\x80\x04."}.items():
            zf.writestr(n, data)
    rc, out, err = cli(capsys, "import", str(evil))
    assert (rc, out) == (2, "") and err.count("\n") == 1
    assert err.startswith("error: evil.character cannot be imported: evil.character contains an unexpected file "
                          "'model.pkl'")
    rc, _, err = cli(capsys, "import", str(tmp_path / "nothing.character"))
    assert rc == 2 and err == f"error: The file {tmp_path / 'nothing.character'} does not exist. Check the path and " \
                              "try again.\n"
    assert sorted(p.name for p in user_dirs.library_dir().rglob("*")) == before


def test_recreate_on_a_built_in_model_follows_its_profile(tmp_path, capsys, monkeypatch):
    """The toy model knows toy-world words only (refused before it loads) and draws at 64x64 only."""
    import engine.model_loader
    from app.character_library import CharacterLibrary
    from app.model_profiles import profile_for

    loaded, asked = [], []
    monkeypatch.setattr(engine.model_loader, "load_model",
                        lambda source, **k: loaded.append(source) or SimpleNamespace(source=source))
    monkeypatch.setattr(CharacterLibrary, "recreate", lambda self, entry_id, model, **k:
                        asked.append((model.source, k["size"])) or self.entry(entry_id))
    fox = cli(capsys, "import", str(character_file(tmp_path / "f.character", "Mira")))[1].split(" as ")[1][:-2]
    rc, _, err = cli(capsys, "recreate", fox, "--model", "toy")
    assert rc == 2 and loaded == [] and err.startswith("error: The built-in toy model does not know the words fox")
    creature = Identity(name="Pip", description="a red creature", subjects=("creature",),
                        anchor_prompts=("a red creature",), anchor_seeds=(1,), config={}, scheduler="ddim",
                        steps=2, width=1024, height=768, guidance=5.0, model={"source": "sdxl"}, versions={},
                        anchor_images=(Image.new("RGB", (64, 64), "red"),), noise=torch.zeros(1, 4, 8, 8))
    pip = cli(capsys, "import", str(write_identity(creature, tmp_path / "p.character")))[1].split(" as ")[1][:-2]
    assert cli(capsys, "recreate", pip, "--model", "toy")[0] == 0
    assert cli(capsys, "recreate", pip, "--model", "tiny")[0] == 0
    assert asked == [("toy", (64, 64)), ("tiny", (128, 96))]
    assert profile_for("org/real-model").fit((1024, 768)) == (1024, 768)  # an open model keeps the size
