"""The layering of docs/DESIGN.md, checked: an import that breaks an arrow fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level modules it must never import
FORBIDDEN = {
    "triage": {"flask", "mlflow", "training", "service", "triage_cli", "werkzeug"},
    "training": {"service", "triage_cli", "flask"},
    "service": {"training", "triage_cli", "mlflow"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_import_breaks_the_layering():
    broken = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            bad = _imports(path) & forbidden
            if bad:
                broken.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not broken, "layering broken:\n" + "\n".join(broken)


def test_the_checker_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import flask\nfrom mlflow import log_metric\n")
    assert _imports(bad) == {"flask", "mlflow"}


# ----------------------------------------------------------------- import circles
PACKAGES = ("triage", "training", "service", "triage_cli")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module → modules of the same package it imports, deferred (in-function) imports included:
    a circle "broken" by a deferred import is still a circle."""
    files = {_module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in files)
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                subs = {f"{target}.{a.name}" for a in node.names} & files.keys()
                edges |= subs
                # "from pkg import submodule" needs the submodule, not pkg's own code
                if target in files and len(subs) < len(node.names):
                    edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_inside_a_package():
    found = {p: circles(import_graph(ROOT, p)) for p in PACKAGES}
    assert not any(found.values()), "import circles: " + repr({p: c for p, c in found.items() if c})


def test_the_checker_sees_a_deferred_circle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from . import a  # deferred: still a circle\n    return a\n")
    (pkg / "c.py").write_text("from pkg import b\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.c"] == {"pkg.b"}
    assert circles(graph) == [["pkg.a", "pkg.b"]]


# ----------------------------------------------------------------- configuration
def _reads_environment(path: Path) -> list[int]:
    """Lines that touch ``os.environ`` / ``os.getenv`` / ``os.putenv`` (docstrings do not count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in {"environ", "getenv", "putenv"}
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def test_the_library_reads_no_environment():
    """Settings are declared in service/settings.py and passed in by entry points."""
    found = [
        f"{p.relative_to(ROOT)}:{line}"
        for package in ("triage", "training")
        for p in sorted((ROOT / package).rglob("*.py"))
        for line in _reads_environment(p)
    ]
    assert not found, "os.environ in the library (take an argument instead): " + ", ".join(found)


def test_the_environment_checker_sees_a_read(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""os.environ in prose is fine."""\nimport os\nA = os.environ.get("X")\nB = os.getenv("Y")\n'
    )
    assert _reads_environment(bad) == [3, 4]
