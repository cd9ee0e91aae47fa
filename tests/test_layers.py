"""The layers only import downwards: ui -> app -> engine. engine never imports Qt; ui never imports torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "engine": ("PySide6", "app", "ui", "shiboken6"),
    "app": ("ui", "PySide6.QtWidgets", "PySide6.QtGui"),
    "ui": ("torch", "diffusers", "transformers", "accelerate", "engine"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_down(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for lineno, name in _imports(path):
            for prefix in FORBIDDEN[package]:
                if name == prefix or name.startswith(prefix + "."):
                    bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    assert not bad, "layer violations:\n" + "\n".join(bad)


def test_checker_sees_a_violation(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import torch\nfrom PySide6.QtGui import QImage\n")
    assert [n for _, n in _imports(f)] == ["torch", "PySide6.QtGui"]
