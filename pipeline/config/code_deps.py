"""Which project modules each DVC stage runs, so its `deps` in dvc.yaml can be checked and written.

A stage's code is the import closure of its entry module within the project packages, found by
reading source, not by running it: every `import` and `from ... import` anywhere in a module
(functions included, since those run too) and every string naming a project module ("pkg.mod" or
"pkg.mod:attr", as registries hold them). `python -m pipeline.config.code_deps` prints the deps
each stage should list and `--write` puts them into dvc.yaml; tests/test_stage_deps.py fails when
dvc.yaml and the code disagree.
"""
from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import yaml

PACKAGES = ("pipeline", "modalities", "export", "devices")
MODULE_STRING = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+)(?::\w+)?$")
STAGE_MODULE = re.compile(r"python -m ([\w.]+)")


def module_file(module: str, root: Path) -> Path | None:
    """The source file of a project module or package, or None when it is not one."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules, if they are
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            names.add(MODULE_STRING.match(node.value).group(1))
    return names


@cache
def _direct(module: str, root: Path) -> frozenset[str]:
    path = module_file(module, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for name in _imported(tree):
        parts = name.split(".")
        # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
        found.update(m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if module_file(m, root))
    return frozenset(found - {module})


def closure(module: str, root: Path) -> set[Path]:
    """Source files (relative to root) of `module` and every project module it imports, transitively."""
    parts = module.split(".")
    seen, todo = set(), [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # running a.b.c imports a, a.b
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(_direct(current, root))
    return {module_file(m, root).relative_to(root) for m in seen}


def cover(files: set[Path], root: Path) -> list[str]:
    """The fewest paths that name exactly `files`: a folder where every .py file below it is in `files`
    (empty package markers aside), otherwise the files themselves (empty markers left out)."""
    def walk(folder: Path) -> list[str]:
        below = {p.relative_to(root) for p in (root / folder).rglob("*.py")
                 if "__pycache__" not in p.parts and p.stat().st_size}
        if below <= files:
            return [folder.as_posix()]
        out = [f.as_posix() for f in sorted(files) if f.parent == folder and (root / f).stat().st_size]
        for sub in sorted(p for p in (root / folder).iterdir() if p.is_dir() and p.name != "__pycache__"):
            if any(f.is_relative_to(sub.relative_to(root)) for f in files):
                out += walk(sub.relative_to(root))
        return out

    return [entry for package in PACKAGES if any(f.parts[0] == package for f in files) for entry in walk(Path(package))]


def stage_modules(dvc_file: Path) -> dict[str, str]:
    """stage name -> the module its command runs (`python -m <module>`)."""
    stages = yaml.safe_load(dvc_file.read_text())["stages"]
    out = {}
    for name, spec in stages.items():
        cmd = (spec.get("do") or spec)["cmd"]
        match = STAGE_MODULE.search(cmd if isinstance(cmd, str) else " ".join(cmd))
        if match:
            out[name] = match.group(1)
    return out


def code_deps(dvc_file: Path) -> dict[str, list[str]]:
    root = dvc_file.resolve().parent
    return {stage: cover(closure(module, root), root) for stage, module in stage_modules(dvc_file).items()}


def is_code_dep(entry: str, root: Path) -> bool:
    """A dep naming project source (a .py file, or a folder holding some), not data or resource files."""
    path = root / entry
    return entry.split("/")[0] in PACKAGES and (path.suffix == ".py" or (path.is_dir() and any(path.rglob("*.py"))))


def rewrite(dvc_file: Path) -> str:
    """dvc.yaml's text with each stage's code deps replaced by the generated ones (other deps, comments
    and layout kept): the code deps of a stage come right after its `deps:` line."""
    root = dvc_file.resolve().parent
    wanted = code_deps(dvc_file)
    out, stage, in_deps = [], None, False
    for line in dvc_file.read_text().splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        key = stripped.split("#")[0].strip()
        if indent == 2 and key.endswith(":") and not key.startswith("-"):
            stage, in_deps = key[:-1], False
        if in_deps and stripped.startswith("- "):
            if is_code_dep(stripped[2:].split("#")[0].strip(), root):
                continue
        elif in_deps and stripped:
            in_deps = False
        out.append(line)
        if stripped == "deps:" and stage in wanted:
            in_deps = True
            out += [f"{line[:indent]}  - {entry}" for entry in wanted[stage]]
    return "\n".join(out) + "\n"


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--write"]
    dvc_file = Path(args[0] if args else "dvc.yaml")
    if "--write" in sys.argv:
        dvc_file.write_text(rewrite(dvc_file))
        print(f"{dvc_file}: code deps rewritten")
        return
    for stage, deps in code_deps(dvc_file).items():
        print(f"{stage}:\n" + "".join(f"  - {d}\n" for d in deps))


if __name__ == "__main__":
    main()
