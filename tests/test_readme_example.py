"""The README's embedding example runs as printed, where only the packages its pip line names can be imported
(with what pip would install beside them, and the standard library): no torch, no project code."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from tests.conftest import ROOT

EXAMPLE_HEADING = "## Embedding an exported model"

# Runs a module (-m NAME) or a script (PATH) with an import finder first on sys.meta_path that refuses every
# top-level name outside argv[1] (a JSON list) and the standard library, as if it were not installed.
ONLY_STATED = r"""
import json, runpy, sys
allowed = frozenset(json.loads(sys.argv[1]))

class OnlyStated:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in allowed and top not in sys.stdlib_module_names:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed here: only {sorted(allowed)} "
                                      "and the standard library are)", name=name)
        return None

sys.meta_path.insert(0, OnlyStated())
kind, target, *args = sys.argv[2:]
sys.argv = [target, *args]
if kind == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"""


def importable_names(distributions: list[str]) -> set[str]:
    """Top-level import names of the distributions and of everything they require (extras left out), as
    installed in this environment."""
    by_distribution: dict[str, set[str]] = {}
    for top, dists in metadata.packages_distributions().items():
        for dist in dists:
            by_distribution.setdefault(dist.lower().replace("_", "-"), set()).add(top)
    names, todo, seen = set(), [d.lower() for d in distributions], set()
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        assert dist in by_distribution, f"{dist} is not installed in {sys.prefix}"
        names |= by_distribution[dist]
        for text in metadata.requires(dist) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    return names


def run_with_only(distributions: list[str], target: list[str], cwd: Path, also: tuple[str, ...] = (),
                  home: Path | None = None):
    """Run `target` (["-m", module, *args] or [script, *args]) with this venv's python where only the
    distributions (and the top-level names in `also`) can be imported. HOME is `home` (default cwd):
    onnxruntime writes a cache folder there."""
    allowed = sorted(importable_names(distributions) | set(also))
    kind = target[:2] if target[0] == "-m" else ["path", *target[:1]]
    rest = target[2:] if target[0] == "-m" else target[1:]
    return subprocess.run([sys.executable, "-c", ONLY_STATED, json.dumps(allowed), *kind, *rest], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(home or cwd)})


def readme_example() -> tuple[str, list[str]]:
    """The first python block under the embedding heading, verbatim, and the packages its pip line names."""
    text = (ROOT / "README.md").read_text()
    assert EXAMPLE_HEADING in text, f"README.md: no '{EXAMPLE_HEADING}' section"
    section = text.split(EXAMPLE_HEADING, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, f"README.md: no ```python block under '{EXAMPLE_HEADING}'"
    pip = re.search(r"^# pip install (.+)$", block.group(1), re.M)
    assert pip, f"README.md: the '{EXAMPLE_HEADING}' example does not say what it needs ('# pip install ...')"
    return block.group(1), pip.group(1).split()


def test_the_blocker_refuses_what_the_pip_line_does_not_name(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy, onnxruntime\n"
                     "for name in ('torch', 'PIL', 'devices', 'pipeline', 'openvino'):\n"
                     "    try:\n        __import__(name)\n    except ImportError:\n        continue\n"
                     "    raise SystemExit(f'{name} was importable')\n")
    done = run_with_only(["numpy", "onnxruntime"], [str(probe)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_embedding_example_runs_with_only_its_stated_packages(tmp_path):
    from devices.predict import Predictor
    from tests.test_predict import draw_digit, export, tiny_classifier

    code, packages = readme_example()
    assert {p.lower() for p in packages} == {"numpy", "onnxruntime", "pillow"}, packages
    model = export(tiny_classifier(), tmp_path / "exports" / "digits" / "mae" / "model.onnx")
    draw_digit(tmp_path / "digit.png")
    (tmp_path / "example.py").write_text(code)

    done = run_with_only(packages, [str(tmp_path / "example.py")], tmp_path)
    assert done.returncode == 0, f"README.md '{EXAMPLE_HEADING}' example failed:\n{done.stderr}"
    # the same answer as the app-side predictor, which preprocesses from the model's metadata
    assert done.stdout.strip() == Predictor(model).predict(str(tmp_path / "digit.png"))[0]["label"]
