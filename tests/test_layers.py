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


def _import_statements(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names taken from it) for every absolute import anywhere in the file: ``import a.b`` gives
    ``("a.b", [])``, ``from a import b, c`` gives ``("a", ["b", "c"])``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    return [(line, module) for line, module, _ in _import_statements(path)]


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


PACKAGES = ("engine", "app", "ui")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its text (function bodies and ``TYPE_CHECKING`` blocks
    included: a circle hidden there still ties the files together). ``from pkg import mod`` counts as ``pkg.mod``."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        for _, module, names in _import_statements(path):
            if module in files:
                deps |= ({f"{module}.{n}" for n in names} & files.keys()) or {module}
        graph[name] = deps - {name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_between_project_modules():
    graph = _project_graph()
    assert "ui.main_window" in graph and "ui.project_files" in graph["ui.main_window"]
    assert not _circles(graph), f"modules that import each other in a circle: {_circles(graph)}"


def test_circle_finder_sees_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []
