"""``consistory-studio generate``: text to images from the command line, one PNG and one JSON recipe per prompt.

Image ``i`` uses seed ``N + i``. Each ``<name>.png`` gets a ``<name>.json`` sidecar holding the full recipe
(``GenerationResult.recipe``: model fingerprint, prompts, seeds, scheduler, steps, guidance, size, versions) plus
that image's prompt, seed and index. ``--subject`` switches ConsiStory on (``--vanilla`` turns it back off);
``--debug-masks`` writes ``<name>_mask.png`` with the subject mask tinted red. Progress goes to stderr; ``--json``
prints a summary on stdout. Bad input prints one sentence on stderr and exits with status 2, before any model work
where possible. torch and the engine are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli_model_args import add_model_arguments, load_kwargs

if TYPE_CHECKING:  # pragma: no cover
    from engine.request import GenerationSpec

__all__ = ["add_parser", "run", "spec_from_args", "parse_size", "image_names", "write_mask_overlay"]

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A command-line mistake: one sentence for stderr."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "generate", help="Generate images from prompts (headless).",
        description="Generate one image per --prompt; image i uses seed N+i. Writes PNG + JSON recipe files.")
    p.add_argument("--model", default=None, help="tiny, tiny-sd15, toy, sdxl-random, a hub id, a folder or a "
                                                 ".safetensors file (default: the app's default model)")
    p.add_argument("--prompt", action="append", default=[], required=True, help="a prompt (repeatable)")
    p.add_argument("--seed", type=int, required=True, help="seed of the first image; image i uses seed+i")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--size", default=None, help="WxH in pixels (default: the model's native size)")
    p.add_argument("--scheduler", choices=("ddim", "euler"), default="ddim")
    p.add_argument("--negative", default="", help="negative prompt")
    add_model_arguments(p)
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    c = p.add_argument_group("ConsiStory (consistent subject across the images)")
    c.add_argument("--subject", action="append", default=[], help="subject word, in every prompt (repeatable)")
    c.add_argument("--anchors", type=int, default=None, help="number of anchor images (default 2)")
    c.add_argument("--vanilla", action="store_true", help="plain generation even when subjects are given")
    c.add_argument("--no-inject", action="store_true", help="switch feature injection off")
    c.add_argument("--no-share", action="store_true", help="switch shared self-attention off")
    c.add_argument("--no-query-blend", action="store_true", help="switch vanilla-query blending off")
    c.add_argument("--dropout", type=float, default=None, help="attention dropout (default 0.5; 0 with the toy model)")
    c.add_argument("--debug-masks", action="store_true", help="also write <name>_mask.png subject overlays")
    i = p.add_argument_group("Saved characters")
    i.add_argument("--save-identity", metavar="FILE", default=None,
                   help="save the set's anchors as a character identity (.character)")
    i.add_argument("--name", default=None, help="the character's name for --save-identity (default: the file name)")
    i.add_argument("--identity", metavar="FILE", action="append", default=[],
                   help="make new panels for a saved character (repeatable: several characters in one panel); "
                        "its subject words, steps, scheduler and guidance are used")
    p.set_defaults(run=run)
    return p


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height); raises ``UsageError``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not m:
        raise UsageError(f"The size {text!r} is not of the form WIDTHxHEIGHT, for example 1024x768.")
    return int(m.group(1)), int(m.group(2))


def spec_from_args(args: argparse.Namespace, native_size: tuple[int, int] = (1024, 1024),
                   dropout: float = 0.5) -> "GenerationSpec":
    """Map the parsed arguments onto a ``GenerationSpec`` (ConsiStory config included); ``dropout`` is the attention
    dropout when ``--dropout`` is not given (the model's ``ModelProfile.dropout``, else 0.5). Raises ``UsageError``."""
    from engine.consistory.config import ConsistoryConfig
    from engine.request import GenerationSpec

    prompts = tuple(p.strip() for p in args.prompt)
    for i, p in enumerate(prompts):
        if not p:
            raise UsageError(f"Prompt {i + 1} is empty; write what the picture should show.")
    if args.seed < 0 or args.seed + len(prompts) > 2**63:
        raise UsageError(f"The seed {args.seed} must be a whole number between 0 and 2^63-1.")
    width, height = parse_size(args.size) if args.size else native_size
    if any(not s.strip() for s in args.subject):
        raise UsageError("A --subject word is empty; give the word that names the character, e.g. --subject fox.")
    subjects = tuple(dict.fromkeys(s.strip() for s in args.subject))
    method_flags = [name for name, on in (("--anchors", args.anchors is not None), ("--no-inject", args.no_inject),
                                          ("--no-share", args.no_share), ("--no-query-blend", args.no_query_blend),
                                          ("--dropout", args.dropout is not None), ("--debug-masks", args.debug_masks))
                    if on]
    identities = getattr(args, "identity", []) or []
    save_identity = getattr(args, "save_identity", None)
    if identities and (subjects or [f for f in method_flags if f != "--debug-masks"] or args.vanilla):
        raise UsageError("--identity takes its subject words and settings from the saved character; "
                         "drop --subject and the ConsiStory options.")
    if identities and save_identity:
        raise UsageError("--save-identity stores a new set's anchors; it cannot be combined with --identity.")
    if save_identity and (not subjects or args.vanilla):
        raise UsageError("--save-identity needs a consistent set: give its --subject word (and no --vanilla).")
    if save_identity and args.anchors == 0:
        raise UsageError("--save-identity stores the set's anchors: it needs at least one; drop --anchors 0.")
    if method_flags and not subjects and not (identities and method_flags == ["--debug-masks"]):
        raise UsageError(f"{method_flags[0]} is a ConsiStory option and needs at least one --subject word.")
    consistory = None
    if subjects and not args.vanilla:
        consistory = ConsistoryConfig(
            anchors=2 if args.anchors is None else args.anchors, share=not args.no_share,
            inject=not args.no_inject, query_blend=not args.no_query_blend,
            dropout=dropout if args.dropout is None else args.dropout)
    return GenerationSpec(
        prompts=prompts, seeds=tuple(args.seed + i for i in range(len(prompts))), width=width, height=height,
        steps=args.steps, guidance=args.guidance, scheduler=args.scheduler, negative_prompt=args.negative,
        subjects=subjects, consistory=consistory)


def image_names(prompts: tuple[str, ...] | list[str]) -> list[str]:
    """File stems '001_a-fox-in-the-snow' (index keeps them unique and in prompt order)."""
    names = []
    for i, p in enumerate(prompts):
        slug = re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-")[:40].rstrip("-") or "image"
        names.append(f"{i + 1:03d}_{slug}")
    return names


def write_mask_overlay(image, mask, path: Path) -> None:
    """Save ``image`` with ``mask`` (bool array/tensor at any grid size, upsampled nearest) tinted red."""
    import numpy as np
    from PIL import Image

    m = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    m_img = Image.fromarray((m.astype(bool) * 255).astype(np.uint8), mode="L").resize(image.size, Image.NEAREST)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    sel = np.asarray(m_img) > 127
    red = np.array([255.0, 0.0, 0.0], dtype=np.float32)
    rgb[sel] = 0.45 * rgb[sel] + 0.55 * red
    Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8)).save(path)


def _prepare_out(out: str) -> Path:
    folder = Path(out).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"The output folder {folder} cannot be created ({exc.strerror or exc}); choose another --out.")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"The output folder {folder} is not writable; choose another --out.")
    return folder


def _generate_for_identities(model, args, spec, on_step):
    """New panels for saved characters (their anchor caches are built on first use)."""
    from engine.identity import read_identity
    from engine.identity.identities import generate_with_identities

    identities = [read_identity(Path(f).expanduser()) for f in args.identity]
    size = parse_size(args.size) if args.size else (identities[0].width, identities[0].height)
    print(f"Characters: {', '.join(i.name for i in identities)} "
          f"({identities[0].steps} steps, from the first character)", file=sys.stderr)
    return generate_with_identities(model, prompts=spec.prompts, seeds=spec.seeds, identities=identities,
                                    width=size[0], height=size[1], negative_prompt=args.negative or None,
                                    on_step=on_step)


def _check_identity_dest(path: Path) -> None:
    """``--save-identity`` names a new file in a writable folder: checked before any model work."""
    if path.is_dir():
        raise UsageError(f"--save-identity names the file to write, e.g. {path / 'mira.character'}; {path} is a "
                         "folder.")
    if path.exists():
        raise UsageError(f"{path} already exists; choose another --save-identity file (nothing is overwritten).")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"The folder {path.parent} cannot be created ({exc.strerror or exc}); choose another "
                         "--save-identity file.") from exc
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"The folder {path.parent} is not writable; choose another --save-identity file.")


def _save_identity(model, args, spec, result) -> bool:
    """Write the set's identity (after its pictures); a disk error is one sentence, the pictures stay."""
    from engine.identity import write_identity
    from engine.identity.identities import identity_from_set

    path = Path(args.save_identity).expanduser()
    ident = identity_from_set(model, spec, result, name=args.name or path.stem,
                              description=spec.prompts[0])
    try:
        write_identity(ident, path)
    except OSError as exc:
        print(f"error: the character could not be written to {path} ({exc.strerror or exc}); the pictures are "
              "saved, generate the set again to save its character.", file=sys.stderr)
        return False
    print(f"Saved the character '{ident.name}' ({len(ident.anchor_prompts)} anchors) to {path}", file=sys.stderr)
    return True


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _run(args: argparse.Namespace) -> int:
    from engine.errors import Cancelled, EngineError

    started = time.perf_counter()
    # 1. Everything checkable without the model: flags, prompts, seeds, steps, size format, output folder.
    try:
        spec_from_args(args).validate(vae_scale_factor=1)
    except EngineError as exc:
        raise UsageError(str(exc)) from exc
    for f in args.identity:
        if not Path(f).expanduser().is_file():
            raise UsageError(f"The character file {f} does not exist; give the path of a .character file.")
    folder = _prepare_out(args.out)
    if args.save_identity:
        _check_identity_dest(Path(args.save_identity).expanduser())
    from app.model_choice import default_model_source

    source = args.model or default_model_source()
    from app.model_profiles import profile_for, unknown_words_message

    profile = profile_for(source)
    words = unknown_words_message(profile, [*args.prompt, *(args.subject or [])])
    if words:
        raise UsageError(words)
    try:
        from engine.generate import generate
        from engine.model_loader import load_model

        # 2. The model, then the checks that need it (size multiple of the model's latent grid).
        print(f"Loading {source} ...", file=sys.stderr)
        model = load_model(source, **load_kwargs(args),
                           progress=lambda msg, frac: print(f"  {msg}", file=sys.stderr))
        unet_size = int(model.pipe.unet.config.sample_size) * model.vae_scale_factor
        spec = spec_from_args(args, native_size=(unet_size, unet_size), dropout=profile.dropout)
        spec.validate(model.vae_scale_factor)
        # 3. Generate, with progress on stderr.
        print(f"Generating {len(spec.prompts)} image(s) at {spec.width}x{spec.height}, {spec.steps} steps "
              f"on {model.device} ...", file=sys.stderr)

        def on_step(info) -> None:
            print(f"  step {info.step}/{info.total}", file=sys.stderr)

        if args.identity:
            result = _generate_for_identities(model, args, spec, on_step)
        else:
            result = generate(model, spec, on_step=on_step)
    except Cancelled:
        print("Cancelled; nothing was written.", file=sys.stderr)
        return 130
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # 4. Write PNG + JSON sidecar (+ mask overlay) per image.
    files = []
    for i, (name, image) in enumerate(zip(image_names(spec.prompts), result.images)):
        png, side = folder / f"{name}.png", folder / f"{name}.json"
        image.save(png)
        sidecar = {"image_index": i, "prompt": spec.prompts[i], "seed": spec.seeds[i], "file": png.name,
                   "recipe": result.recipe}
        side.write_text(json.dumps(sidecar, indent=2, default=str) + "\n", encoding="utf-8")
        entry: dict[str, Any] = {"png": str(png), "json": str(side), "prompt": spec.prompts[i], "seed": spec.seeds[i]}
        if args.debug_masks and result.masks is not None and i < len(result.masks) and result.masks[i] is not None:
            mask_path = folder / f"{name}_mask.png"
            write_mask_overlay(image, result.masks[i], mask_path)
            entry["mask"] = str(mask_path)
        files.append(entry)
        print(f"Wrote {png}", file=sys.stderr)
    if args.save_identity:
        try:
            if not _save_identity(model, args, spec, result):
                return EXIT_BAD_INPUT
        except EngineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.json:
        summary = {"model": model.describe(), "images": files, "seconds": round(time.perf_counter() - started, 3),
                   "consistory": spec.consistory is not None or bool(args.identity),
                   "identity_saved": args.save_identity}
        print(json.dumps(summary, indent=2, default=str))
    return 0
