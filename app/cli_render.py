"""``consistory-studio render PROJECT --out BOOK``: generate every missing panel, then export the book.

Contract:
- Opens the project folder (missing image files are tolerated: they become placeholders), plans the missing
  panels with ``app.job_plan.plan_jobs`` and runs each job with ``app.job_runner.run_job`` (each finished job is
  saved into the project before the next starts), printing progress on stderr. ``--no-generate`` skips this.
- ``--max-side N`` renders panels with their long side scaled to N pixels (rounded to the model's size step);
  built-in models default to their profile (``app.model_profiles``): the toy model 64 px and 20 steps, the tiny
  models 128 px and 3 steps (random weights: more steps only cost time). ``--steps`` overrides the step count.
- With the toy model, a job whose prompts use words it does not know is not drawn; the warning names the words.
- A panel that cannot be generated (bad prompt, engine error) is reported and drawn as a labelled grey
  placeholder; the book is still written. A model that cannot be loaded, a bad project or a bad output path stops
  with one sentence on stderr and exit code 2 (from ``app.cli``). Cancel with Ctrl+C keeps finished panels.
- Then ``app.export.export_book`` writes ``--format`` pdf (print, default), screen-pdf, png or cbz at ``--dpi``;
  every export warning (low dpi, text that does not fit, placeholders) is printed on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cli_model_args import add_model_arguments, load_kwargs
from .model_profiles import scaled_size

__all__ = ["add_parser", "run", "scaled_size"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("render", help="generate missing panels and export the book",
                              description="Generate every missing panel of a project, then export the book.")
    p.add_argument("project", help="the project folder")
    p.add_argument("--out", required=True, help="output file (book.pdf, book.cbz) or folder for png pages")
    p.add_argument("--format", dest="fmt", choices=("pdf", "screen-pdf", "png", "cbz"), default=None,
                   help="print pdf (default; from --out's extension when it is .cbz), screen-pdf, png or cbz")
    p.add_argument("--model", default=None, help="model source (default: the project's, else the built-in one)")
    p.add_argument("--only-missing", action=argparse.BooleanOptionalAction, default=True,
                   help="generate only panels without an image (default); --no-only-missing also redoes "
                        "panels whose settings changed since their image was made")
    p.add_argument("--no-generate", action="store_true", help="export only; missing panels become placeholders")
    p.add_argument("--dpi", type=int, default=300, help="resolution of png/cbz pages (default 300)")
    add_model_arguments(p)
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps (default: the project's; 20 for toy, 3 for tiny)")
    p.add_argument("--max-side", type=int, default=None,
                   help="long side of generated panels in pixels (default: panel size; 64 for toy, 128 for tiny)")
    p.add_argument("--batch", type=int, default=4, help="images per engine call, anchors included (default 4)")
    p.set_defaults(run=run)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _plan(project: Any, folder: Path, args: argparse.Namespace, quiet: bool = False) -> tuple[list[Any], list[str]]:
    """The jobs for every panel that can be generated, and the ids of those that cannot (each reported once)."""
    from .job_plan import plan_jobs
    from .project_model import ProjectError

    try:
        return plan_jobs(project, max_batch=args.batch, only_missing=args.only_missing, folder=folder,
                         steps=args.steps), []
    except ProjectError:  # one bad panel must not stop the others: plan them one by one
        pass
    stale = set()
    if not args.only_missing:
        from .job_plan import stale_panels

        stale = set(stale_panels(project, folder, steps=args.steps, max_batch=args.batch))
    jobs: list[Any] = []
    failed: list[str] = []
    for p in project.panels:
        if p.current is None or p.id in stale:
            try:
                jobs += plan_jobs(project, max_batch=args.batch, panel_ids=[p.id], steps=args.steps)
            except ProjectError as e:
                if not quiet:
                    _say(f"warning: panel {p.id} cannot be generated: {e}")
                failed.append(p.id)
    return jobs, failed


def _generate(project: Any, folder: Path, args: argparse.Namespace) -> tuple[Any, list[str]]:
    """Run every planned job; returns the reopened project and the ids of panels that failed."""
    from engine.errors import Cancelled, EngineError
    from engine.model_loader import load_model

    from .job_runner import run_job
    from .model_choice import default_model_source
    from .model_profiles import job_words_message, profile_for
    from .project_model import ProjectError
    from .project_store import open_project

    planned, failed = _plan(project, folder, args)
    if not planned:
        _say("Every panel that can be generated already has an image.")
        return project, failed
    source = args.model or project.model_source or default_model_source()
    _say(f"Loading model {source} …")
    model = load_model(source, **load_kwargs(args))
    multiple = 8 * int(getattr(model.pipe, "vae_scale_factor", 8))
    profile = profile_for(source)
    max_side = args.max_side or profile.max_side
    work = project
    if max_side:
        work = replace(project, panels=tuple(
            replace(p, width=s[0], height=s[1]) for p in project.panels
            for s in [profile.panel_size(scaled_size(p.width, p.height, max_side, multiple))]))
    if args.steps is None and profile.steps is not None:
        args = argparse.Namespace(**{**vars(args), "steps": profile.steps})
    jobs, _ = _plan(work, folder, args, quiet=True)
    total = sum(len(j.panel_ids) for j in jobs)
    done = 0
    for k, job in enumerate(jobs, 1):
        t0 = time.monotonic()
        last = [0.0]

        def progress(info: Any, k: int = k, job: Any = job) -> None:
            now = time.monotonic()
            if info.step == info.total or now - last[0] > 1.0:
                last[0] = now
                _say(f"[job {k}/{len(jobs)}] {len(job.panel_ids)} panel(s), step {info.step}/{info.total}")

        words = job_words_message(profile, job)
        if words:
            _say(f"warning: job {k}/{len(jobs)} ({', '.join(job.panel_ids)}) not drawn: {words}")
            failed += list(job.panel_ids)
            continue
        try:
            run_job(job, work, folder, model, on_progress=progress)
        except Cancelled:
            raise
        except (EngineError, ProjectError) as exc:
            _say(f"warning: job {k}/{len(jobs)} ({', '.join(job.panel_ids)}) failed: {exc}")
            failed += list(job.panel_ids)
            continue
        done += len(job.panel_ids)
        _say(f"[job {k}/{len(jobs)}] done in {time.monotonic() - t0:.1f} s ({done}/{total} panels)")
    return open_project(folder, allow_missing=True), failed


def run(args: argparse.Namespace) -> int:
    from .export import export_book, prepare_export
    from .project_store import open_project

    folder = Path(args.project)
    out = Path(args.out)
    fmt = args.fmt or ("cbz" if out.suffix.lower() == ".cbz" else "png" if out.suffix.lower() == ".png" else "pdf")
    if args.batch < 1:
        _say("error: --batch must be at least 1.")
        return 2
    if args.steps is not None and not 1 <= args.steps <= 1000:
        _say("error: --steps must be between 1 and 1000.")
        return 2
    if args.max_side is not None and args.max_side < 16:
        _say("error: --max-side must be at least 16 pixels.")
        return 2
    project = open_project(folder, allow_missing=True)
    prepare_export(project, folder, out, fmt, dpi=args.dpi)  # export mistakes before any drawing, not after
    failed: list[str] = []
    if not args.no_generate:
        project, failed = _generate(project, folder, args)
    t0 = time.monotonic()

    def progress(i: int, n: int) -> None:
        if fmt in ("png", "cbz"):
            _say(f"export: page {i}/{n}")

    report = export_book(project, folder, out, fmt, dpi=args.dpi, progress=progress)
    for w in report.warnings():
        _say(f"warning: {w}")
    where = report.files[0] if len(report.files) == 1 else out
    _say(f"Wrote {report.pages_written} page(s) as {fmt} to {where} in {time.monotonic() - t0:.1f} s"
         + (f"; {len(failed)} panel(s) could not be generated" if failed else "") + ".")
    return 0
