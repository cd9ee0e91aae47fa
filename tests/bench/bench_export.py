"""Benchmark: export a 24-page book (print PDF, and PNG pages at 150 dpi) and report seconds.

Run: ``.venv/bin/python tests/bench/bench_export.py [--pages 24] [--panel-px 1024] [--json]``.
Panels are distinct 1024 px PNGs (smooth colour fields with grain, about the size of generated images); pages cycle
through the shipped layouts with three balloons each. Setup (writing the images) is not timed. Target: the print
PDF of 24 pages in ≤ 10 s on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def build(folder: Path, pages: int, px: int):
    import numpy as np
    from PIL import Image

    from app.assets import write_image_asset
    from app.layouts import load_layout
    from app.project_model import Balloon, BookSettings, Page, Panel, Project, SlotFill

    layouts = ["2x2", "3-tiers", "splash", "2-tiers", "2x3", "strip-3", "picture-book"]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:px, 0:px] / px
    panels, page_list = [], []
    for i in range(pages):
        lay = layouts[i % len(layouts)]
        slots = []
        for _ in load_layout(lay).slots:
            k = len(panels)
            base = np.stack([np.sin(xx * 3 + k) * 90 + 128, np.cos(yy * 4 + k) * 90 + 128,
                             (xx + yy) * 60 + 40], -1)
            img = (base + rng.normal(0, 6, base.shape)).clip(0, 255).astype(np.uint8)
            aid = write_image_asset(folder, Image.fromarray(img), {"bench": k})
            panels.append(Panel(f"p{k}", f"panel {k}", current=aid, alternates=(aid,), width=px, height=px))
            slots.append(SlotFill(f"p{k}"))
        balloons = (Balloon(f"s{i}", "speech", "Did you hear that? Something is moving in the trees.",
                            0.06, 0.04, 0.42, 0.12, 0.25, 0.3),
                    Balloon(f"t{i}", "thought", "Stay calm...", 0.55, 0.45, 0.3, 0.1, 0.5, 0.62),
                    Balloon(f"c{i}", "caption", f"Chapter {i + 1}", 0.05, 0.9, 0.35, 0.05))
        page_list.append(Page(f"pg{i}", lay, slots=tuple(slots), balloons=balloons))
    return Project("Bench", BookSettings(title="Bench"), panels=tuple(panels), pages=tuple(page_list))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=24)
    ap.add_argument("--panel-px", type=int, default=1024)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from app.export import export_book

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "book"
        t0 = time.perf_counter()
        project = build(folder, args.pages, args.panel_px)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = export_book(project, folder, Path(tmp) / "book.pdf", "pdf")
        pdf_s = time.perf_counter() - t0
        size_mb = (Path(tmp) / "book.pdf").stat().st_size / 1e6
        t0 = time.perf_counter()
        export_book(project, folder, Path(tmp) / "png", "png", dpi=150)
        png_s = time.perf_counter() - t0
    result = {"pages": rep.pages_written, "panels": len(project.panels), "panel_px": args.panel_px,
              "print_pdf_s": round(pdf_s, 2), "pdf_mb": round(size_mb, 1), "png_150dpi_s": round(png_s, 2),
              "setup_s": round(setup, 1), "target_pdf_s": 10.0, "pdf_within_target": pdf_s <= 10.0}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
