"""`generate --save-identity` stores a set's anchors as a character; `generate --identity` makes new panels for
it that equal the same panels generated in the original set; mistakes give one sentence and exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from engine.identity import read_identity

BASE = ["generate", "--model", "tiny", "--steps", "4", "--size", "64x64"]


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_save_identity_then_new_panel_equals_the_set_panel(tmp_path, capsys):
    out, char = tmp_path / "set", tmp_path / "mira.character"
    prompts = ["a photo of a fox", "a fox in the snow", "a fox reads a map"]
    args = [*BASE, "--seed", "3", "--subject", "fox", "--out", str(out), "--save-identity", str(char),
            "--name", "Mira"]
    for p in prompts:
        args += ["--prompt", p]
    assert main(args) == 0, capsys.readouterr().err
    ident = read_identity(char)
    assert ident.name == "Mira" and ident.anchor_prompts == tuple(prompts[:2]) and ident.anchor_seeds == (3, 4)
    assert "Saved the character 'Mira'" in capsys.readouterr().err
    # the third image again, later, against the saved character (seed 5 = 3 + 2)
    later = tmp_path / "later"
    code = main([*BASE, "--seed", "5", "--identity", str(char), "--prompt", prompts[2], "--out", str(later),
                 "--json", "--debug-masks"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["consistory"] is True and "mask" in summary["images"][0]
    a = np.asarray(Image.open(out / "003_a-fox-reads-a-map.png"), np.int16)
    b = np.asarray(Image.open(later / "001_a-fox-reads-a-map.png"), np.int16)
    assert np.abs(a - b).max() <= 2


@pytest.mark.parametrize("extra, message", [
    (["--identity", "nope.character"], "does not exist"),
    (["--save-identity", "x.character"], "needs a consistent set"),
    (["--subject", "fox", "--anchors", "0", "--save-identity", "x.character"], "needs at least one; drop --anchors 0"),
    (["--identity", "a.character", "--subject", "fox"], "drop --subject"),
])
def test_identity_mistakes_are_one_sentence(tmp_path, capsys, extra, message):
    (tmp_path / "a.character").write_bytes(b"not a zip")
    code = main([*BASE, "--seed", "1", "--prompt", "a fox", "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert len(_errors(err)) == 1 and message in err


def test_a_damaged_character_file_is_reported(tmp_path, capsys):
    bad = tmp_path / "bad.character"
    bad.write_bytes(b"PK\x03\x04 broken")
    code = main([*BASE, "--seed", "1", "--prompt", "a fox", "--identity", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "not a character file" in err
    assert not list((tmp_path / "o").glob("*.png"))


def test_a_save_identity_path_that_cannot_be_written_is_refused_before_any_model_work(tmp_path, capsys,
                                                                                     monkeypatch):
    import engine.model_loader

    monkeypatch.setattr(engine.model_loader, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "taken.character").write_bytes(b"someone's character")
    set_args = [*BASE, "--seed", "1", "--subject", "fox", "--prompt", "a fox", "--prompt", "a fox in the snow",
                "--out", str(tmp_path / "o")]
    for dest, message in ((tmp_path, "is a folder"), (tmp_path / "taken.character", "already exists"),
                          (tmp_path / "taken.character" / "x.character", "cannot be created")):
        code = main([*set_args, "--save-identity", str(dest)])
        err = capsys.readouterr().err
        assert code == 2 and len(_errors(err)) == 1 and message in err, err
    assert (tmp_path / "taken.character").read_bytes() == b"someone's character"
    assert not list((tmp_path / "o").glob("*.png"))
