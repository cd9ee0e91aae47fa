"""The portable ``.character`` file: a zip of ``identity.json``, the anchor PNGs and the initial anchor noise.

No pickles anywhere: JSON, PNG and safetensors only. Reading refuses unknown members, absolute or ``..`` paths,
oversized members, unknown formats and newer schema versions, each with one sentence saying what to do.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import EngineError, InvalidRequestError

__all__ = ["Identity", "IdentityError", "read_identity", "write_identity", "FORMAT", "SCHEMA_VERSION"]

FORMAT = "consistory-studio-character"
SCHEMA_VERSION = 1
_MAX_MEMBER = 64 * 1024 * 1024
_MAX_ANCHORS = 16


class IdentityError(EngineError):
    """A ``.character`` file cannot be used."""


@dataclass(frozen=True)
class Identity:
    """A character's identity: the recipe that re-creates its anchors exactly, plus the anchor images.

    ``noise`` (A, C, h, w) float32 is the anchors' initial noise (saved so anchors re-create across machines);
    ``config`` is a ``ConsistoryConfig`` dict; ``model`` holds the fingerprint, source and family it was made with.
    """

    name: str
    description: str
    subjects: tuple[str, ...]
    anchor_prompts: tuple[str, ...]
    anchor_seeds: tuple[int, ...]
    config: dict[str, Any]
    scheduler: str
    steps: int
    width: int
    height: int
    guidance: float
    model: dict[str, Any]
    versions: dict[str, str]
    anchor_images: tuple[Image.Image, ...] = field(default=(), compare=False)
    noise: torch.Tensor | None = field(default=None, compare=False)
    negative_prompt: str = ""

    def recipe(self) -> dict[str, Any]:
        """Everything that determines the anchors (what the cache fingerprint is made of)."""
        return {"subjects": list(self.subjects), "anchor_prompts": list(self.anchor_prompts),
                "anchor_seeds": list(self.anchor_seeds), "config": self.config, "scheduler": self.scheduler,
                "steps": self.steps, "width": self.width, "height": self.height, "guidance": self.guidance,
                "negative_prompt": self.negative_prompt, "model_fingerprint": self.model.get("fingerprint")}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "name": self.name,
                "description": self.description, **self.recipe(), "model": self.model, "versions": self.versions}

    def renamed(self, name: str) -> "Identity":
        return replace(self, name=name)


def write_identity(identity: Identity, path: str | Path) -> Path:
    """Write atomically (temp file + rename)."""
    from safetensors.torch import save

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        _write_zip(identity, tmp, save)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_zip(identity: Identity, tmp: Path, save) -> None:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("identity.json", json.dumps(identity.to_json(), indent=1, ensure_ascii=False))
        for k, im in enumerate(identity.anchor_images):
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            zf.writestr(f"anchors/anchor_{k}.png", buf.getvalue())
        if identity.noise is not None:
            zf.writestr("noise.safetensors", save({"noise": identity.noise.detach().to("cpu", torch.float32).contiguous()}))


def _need(d: dict, key: str, kind, where: str):
    if key not in d:
        raise IdentityError(f"{where} is missing '{key}'.", hint="The file is damaged; export the character again.")
    v = d[key]
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise IdentityError(f"{where}: '{key}' has the wrong type ({type(v).__name__}).",
                            hint="The file is damaged; export the character again.")
    return v


def read_identity(path: str | Path) -> Identity:
    from safetensors.torch import load

    path = Path(path)
    where = path.name
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise IdentityError(f"The character file {path} does not exist.") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise IdentityError(f"{where} is not a character file (not a valid zip).",
                            hint="Choose a .character file exported by Consistory Studio.") from exc
    with zf:
        names = zf.namelist()
        for info in zf.infolist():
            n = info.filename
            if n.startswith(("/", "\\")) or ".." in Path(n).parts or ":" in n or "\\" in n:
                raise IdentityError(f"{where} contains an unsafe path {n!r}; it was not opened.")
            allowed = n in ("identity.json", "noise.safetensors") or (
                n.startswith("anchors/anchor_") and n.endswith(".png"))
            if not allowed:
                raise IdentityError(f"{where} contains an unexpected file {n!r} (only JSON, PNG and safetensors are "
                                    "allowed; pickles are refused).")
            if info.file_size > _MAX_MEMBER:
                raise IdentityError(f"{where}: {n} is too large ({info.file_size} bytes).")
        if "identity.json" not in names:
            raise IdentityError(f"{where} has no identity.json.", hint="Choose a .character file.")
        try:
            data = json.loads(zf.read("identity.json").decode("utf-8"))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # a bad CRC, damaged compressed data
            raise IdentityError(f"{where} is damaged: identity.json cannot be read ({exc}).",
                                hint="Export the character again, or restore it from a copy.") from exc
        except ValueError as exc:  # includes UnicodeDecodeError
            raise IdentityError(f"{where}: identity.json is not valid JSON.") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IdentityError(f"{where} is not a Consistory Studio character.")
        version = data.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise IdentityError(f"{where} has an invalid schema version {version!r}.")
        if version > SCHEMA_VERSION:
            raise IdentityError(f"{where} was made by a newer version of Consistory Studio (format {version}).",
                                hint="Update the app to open it.")
        prompts = tuple(_need(data, "anchor_prompts", list, where))
        seeds = tuple(_need(data, "anchor_seeds", list, where))
        if not prompts or len(prompts) > _MAX_ANCHORS or len(seeds) != len(prompts) or not all(
                isinstance(s, int) for s in seeds) or not all(isinstance(p, str) for p in prompts):
            raise IdentityError(f"{where}: the anchor prompts and seeds do not match.")
        images = []
        for k in range(len(prompts)):
            member = f"anchors/anchor_{k}.png"
            if member in names:
                try:
                    im = Image.open(io.BytesIO(zf.read(member)))
                    im.load()
                except Exception as exc:
                    raise IdentityError(f"{where}: {member} is not a readable PNG.") from exc
                images.append(im.convert("RGB"))
        noise = None
        if "noise.safetensors" in names:
            try:
                noise = load(zf.read("noise.safetensors"))["noise"]
            except Exception as exc:
                raise IdentityError(f"{where}: the saved anchor noise is damaged.",
                                    hint="Re-create the character's anchors.") from exc
            if noise.ndim != 4 or noise.shape[0] != len(prompts):
                raise IdentityError(f"{where}: the saved anchor noise has the wrong shape {tuple(noise.shape)}.")
        subjects = tuple(_need(data, "subjects", list, where))
        if not subjects or not all(isinstance(s, str) and s.strip() for s in subjects):
            raise IdentityError(f"{where}: the character has no subject word.")
        config = _need(data, "config", dict, where)
        try:
            from ..consistory.config import ConsistoryConfig

            ConsistoryConfig.from_dict({**config, "anchors": len(prompts)}).validate(len(prompts))
        except InvalidRequestError as exc:
            raise IdentityError(f"{where}: its settings are damaged: {exc.message}",
                                hint="Export the character again, or re-create its anchors.") from exc
        return Identity(
            name=_need(data, "name", str, where), description=data.get("description", "") or "",
            subjects=subjects, anchor_prompts=prompts, anchor_seeds=seeds,
            config=config, scheduler=_need(data, "scheduler", str, where),
            steps=_need(data, "steps", int, where), width=_need(data, "width", int, where),
            height=_need(data, "height", int, where), guidance=_need(data, "guidance", float, where),
            model=_need(data, "model", dict, where), versions=data.get("versions", {}) or {},
            anchor_images=tuple(images), noise=noise, negative_prompt=data.get("negative_prompt", "") or "")
