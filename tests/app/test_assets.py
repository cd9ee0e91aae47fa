"""Assets are content-addressed and immutable; writes are atomic; paths that leave the project folder are refused."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

import app.assets as assets
from app.assets import (asset_path, check_asset, import_file, read_sidecar, resolve_inside, sidecar_path,
                        write_asset, write_image_asset)
from app.project_model import ProjectError

PNG = b"\x89PNG\r\n\x1a\n" + b"body"


def test_asset_id_is_the_sha256_and_files_land_in_assets(tmp_path):
    aid = write_asset(tmp_path, PNG, {"recipe": {"seed": 3}})
    assert aid == hashlib.sha256(PNG).hexdigest()
    assert asset_path(tmp_path, aid).read_bytes() == PNG
    side = json.loads(sidecar_path(tmp_path, aid).read_text())
    assert side == {"format": "consistory-studio-asset", "asset_id": aid, "recipe": {"seed": 3}}
    assert read_sidecar(tmp_path, aid) == side
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == [f"{aid}.json", f"{aid}.png"]
    assert oct(asset_path(tmp_path, aid).stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_writing_the_same_bytes_twice_changes_nothing(tmp_path):
    aid = write_asset(tmp_path, PNG, {"recipe": {"seed": 1}})
    stats = [os.stat(p) for p in (asset_path(tmp_path, aid), sidecar_path(tmp_path, aid))]
    assert write_asset(tmp_path, PNG, {"recipe": {"seed": 2}}) == aid
    after = [os.stat(p) for p in (asset_path(tmp_path, aid), sidecar_path(tmp_path, aid))]
    assert [(s.st_ino, s.st_mtime_ns) for s in after] == [(s.st_ino, s.st_mtime_ns) for s in stats]
    assert read_sidecar(tmp_path, aid)["recipe"] == {"seed": 1}  # the first recipe is kept


def test_pil_images_are_stored_as_png(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (8, 8), (200, 10, 10))
    aid = write_image_asset(tmp_path, img, {})
    assert write_image_asset(tmp_path, img.copy(), {}) == aid  # same pixels, same bytes, same id
    assert Image.open(asset_path(tmp_path, aid)).getpixel((3, 3)) == (200, 10, 10)


def test_non_png_bytes_are_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ProjectError, match="only PNG images"):
        write_asset(tmp_path, b"GIF89a....", {})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_temp_file_and_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    target.write_bytes(b"old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(assets.os, "replace", boom)
    with pytest.raises(OSError, match="No space left"):
        assets.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


@pytest.mark.parametrize("rel, message", [
    ("/etc/passwd", "must be relative paths"),
    ("C:/Users/x.png", "must be relative paths"),
    ("a\\b.png", "must be relative paths"),
    ("../x.png", "must stay inside the project folder"),
    ("characters/../../x", "must stay inside the project folder"),
    ("", "expected a relative file path"),
])
def test_paths_leaving_the_folder_are_refused(tmp_path, rel, message):
    with pytest.raises(ProjectError, match=message):
        resolve_inside(tmp_path, rel)


def test_links_leading_out_are_refused_links_inside_are_fine(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_bytes(b"x")
    proj = tmp_path / "proj"
    (proj / "characters").mkdir(parents=True)
    (proj / "characters" / "out.character").symlink_to(tmp_path / "outside" / "x")
    (proj / "real.character").write_bytes(b"r")
    (proj / "characters" / "in.character").symlink_to(proj / "real.character")
    with pytest.raises(ProjectError, match="is a link that leads out of the project folder"):
        resolve_inside(proj, "characters/out.character")
    assert resolve_inside(proj, "characters/in.character") == proj.resolve() / "characters/in.character"


def test_check_asset_reports_missing_and_bad_ids(tmp_path):
    with pytest.raises(ProjectError, match="is missing"):
        check_asset(tmp_path, "a" * 64)
    with pytest.raises(ProjectError, match="is not an asset id"):
        check_asset(tmp_path, "../../etc/passwd")


def test_import_file_copies_into_the_project(tmp_path):
    src = tmp_path / "lib.character"
    src.write_bytes(b"identity v1")
    proj = tmp_path / "proj"
    assert import_file(proj, src, "characters/mira.character") == "characters/mira.character"
    assert (proj / "characters" / "mira.character").read_bytes() == b"identity v1"
    with pytest.raises(ProjectError):
        import_file(proj, src, "../escape.character")
    assert not (tmp_path / "escape.character").exists()
