"""``consistory-studio character``: the character library from the command line.

Verbs: ``list [--json]``, ``import FILE``, ``export NAME_OR_ID DEST [--force]``, ``rename ID NAME``,
``delete ID`` (to the trash), ``restore ID``, ``trash [--empty] [--json]``, ``recreate ID [--model SOURCE]
[--steps N]`` (re-create a character's anchors on another model). Tables and results go to stdout; a mistake
prints one sentence on stderr (``LibraryError`` via ``app.cli``) and exits with status 2. The engine is imported
only when a verb needs it (``recreate``).
"""

from __future__ import annotations

import argparse
import json
import sys

from .character_library import CharacterLibrary, LibraryEntry
from .cli_model_args import add_model_arguments, load_kwargs

__all__ = ["add_parser", "run", "format_table"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "character", help="List, import, export, rename, delete or restore saved characters.",
        description="The character library (saved identities shared by all projects).")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("list", help="list the characters in the library")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    imp = verbs.add_parser("import", help="copy a .character file into the library")
    imp.add_argument("file")
    exp = verbs.add_parser("export", help="copy a character to a .character file")
    exp.add_argument("name_or_id")
    exp.add_argument("dest", help="a file path, or a folder (the file is named after the character)")
    exp.add_argument("--force", action="store_true", help="replace DEST if it exists")
    ren = verbs.add_parser("rename", help="give a character a new name (its id stays)")
    ren.add_argument("id")
    ren.add_argument("name")
    dele = verbs.add_parser("delete", help="move a character to the trash")
    dele.add_argument("id")
    res = verbs.add_parser("restore", help="bring a character back from the trash")
    res.add_argument("id")
    tr = verbs.add_parser("trash", help="list the trash (or empty it)")
    tr.add_argument("--empty", action="store_true", help="delete everything in the trash for good")
    tr.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rec = verbs.add_parser("recreate", help="re-create a character's anchors on another model")
    rec.add_argument("id")
    rec.add_argument("--model", default=None, help="model source (default: the app's default model)")
    rec.add_argument("--steps", type=int, default=None, help="denoising steps (default: the character's)")
    add_model_arguments(rec)
    p.set_defaults(run=run)
    return p


def format_table(entries: list[LibraryEntry]) -> str:
    """A plain-text table: id, name, subjects, anchors, model, size."""
    rows = [("ID", "NAME", "SUBJECTS", "ANCHORS", "MODEL", "SIZE")]
    for e in entries:
        if e.error:
            rows.append((e.id, "(unreadable)", "-", "-", "-", _size(e.size_bytes)))
            continue
        model = f"{e.model_source} ({e.model_fingerprint[:8]})" if e.model_fingerprint else e.model_source
        rows.append((e.id, e.name, ", ".join(e.subjects), str(e.anchors), model, _size(e.size_bytes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.0f} KB" if n < 1024**2 else f"{n / 1024**2:.1f} MB"


def _print_entries(entries: list[LibraryEntry], as_json: bool, empty: str) -> None:
    if as_json:
        print(json.dumps([e.to_dict() for e in entries], indent=1, ensure_ascii=False))
    elif not entries:
        print(empty)
    else:
        print(format_table(entries))
        for e in entries:
            if e.error:
                print(f"warning: {e.id}: {e.error}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    lib = CharacterLibrary()
    verb = args.verb
    if verb is None:
        print("error: choose what to do: list, import, export, rename, delete, restore, trash or recreate.",
              file=sys.stderr)
        return 2
    if verb == "list":
        _print_entries(lib.list(), args.json, f"The character library is empty ({lib.folder}).")
    elif verb == "import":
        e = lib.import_file(args.file)
        print(f"Imported {e.name!r} as {e.id}.")
    elif verb == "export":
        dest = lib.export(args.name_or_id, args.dest, overwrite=args.force)
        print(f"Exported to {dest}.")
    elif verb == "rename":
        e = lib.rename(args.id, args.name)
        print(f"Renamed {e.id} to {e.name!r}.")
    elif verb == "delete":
        e = lib.delete(args.id)
        print(f"Moved {e.name!r} ({e.id}) to the trash; 'character restore {e.id}' brings it back.")
    elif verb == "restore":
        e = lib.restore(args.id)
        print(f"Restored {e.name!r} ({e.id}).")
    elif verb == "trash":
        if args.empty:
            print(f"Deleted {lib.empty_trash()} character(s) for good.")
        else:
            _print_entries(lib.trash(), args.json, "The trash is empty.")
    elif verb == "recreate":
        return _recreate(lib, args)
    return 0


def _recreate(lib: CharacterLibrary, args: argparse.Namespace) -> int:
    from engine.model_loader import load_model

    from .model_choice import default_model_source
    from .model_profiles import profile_for, unknown_words_message

    if args.steps is not None and not 1 <= args.steps <= 1000:
        print("error: --steps must be between 1 and 1000.", file=sys.stderr)
        return 2
    old = lib.load(lib.entry(args.id).id)  # unknown or damaged: refused before the model loads
    source = args.model or default_model_source()
    profile = profile_for(source)
    words = unknown_words_message(profile, [*old.anchor_prompts, *old.subjects])
    if words:  # a built-in model with a closed vocabulary, as generate and render refuse
        print(f"error: {words}", file=sys.stderr)
        return 2
    model = load_model(source, **load_kwargs(args))

    def progress(info) -> None:
        print(f"step {info.step}/{info.total}", file=sys.stderr)

    e = lib.recreate(args.id, model, steps=args.steps, size=profile.fit((old.width, old.height)),
                     on_step=progress)
    print(f"Re-created the anchors of {e.name!r} ({e.id}) on {model.source}; the old file is in the trash.")
    return 0
