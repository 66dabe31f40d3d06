"""The layout holds: no two modules of the project import each other, directly or round a loop.

Imports are read from the source with ast, those inside functions included (a lazy import hides a
loop from the interpreter, not from a reader), so the test needs none of the project's dependencies.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_PROJECT = {"tests", "build", "dist"}  # folders at the top that hold no project modules


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file in the top-level folders of the project."""
    modules = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith((".", "_")) or folder.name in NOT_PROJECT:
            continue
        for path in folder.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            if any(part.startswith(".") for part in rel.parts):
                continue
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            modules[".".join(parts)] = path
    return modules


def _importer_package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that `module` imports (the deepest module each import statement names)."""
    def deepest(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {deepest(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _importer_package(module, path).split(".")
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(deepest(f"{base}.{alias.name}") if f"{base}.{alias.name}" in modules else deepest(base))
    return {name for name in found if name and name != module}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {name: imported(name, path, modules) for name, path in modules.items()}


def test_the_cycle_finder_sees_a_loop_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.sub import a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "sub" / "b.py").write_text("from .. import sub\nimport pkg.sub.a\n")
    (pkg / "c.py").write_text("from pkg.sub import b\n")
    graph = import_graph(tmp_path)
    assert graph["pkg"] == {"pkg.sub.a"} and graph["pkg.sub.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.sub", "pkg.sub.a"} and graph["pkg.c"] == {"pkg.sub.b"}
    assert import_cycles(graph) == [["pkg.sub.a", "pkg.sub.b"]]


def test_no_import_cycle_in_the_project():
    cycles = import_cycles(import_graph())
    assert not cycles, "modules that import each other: " + "; ".join(" <-> ".join(c) for c in cycles)


# From the bottom up: a package imports only its own layer and those below it (the app side, devices/,
# is at the bottom and must run where only numpy and a runtime are installed).
LAYERS = ("devices", "modalities", "export", "pipeline")


def test_no_import_runs_back_up_the_layers():
    upward = [f"{name} -> {target}" for name, targets in import_graph().items() for target in targets
              if name.split(".")[0] in LAYERS and target.split(".")[0] in LAYERS
              and LAYERS.index(target.split(".")[0]) > LAYERS.index(name.split(".")[0])]
    assert not upward, "imports that run back up the layers: " + "; ".join(sorted(upward))


def test_the_app_side_imports_no_torch():
    found = [str(path.relative_to(ROOT)) for path in (ROOT / "devices").rglob("*.py")
             if any(isinstance(node, (ast.Import, ast.ImportFrom))
                    and any(n == "torch" or n.startswith("torch.")
                            for n in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]))
                    for node in ast.walk(ast.parse(path.read_text())))]
    assert not found, f"devices/ must not import torch: {found}"
