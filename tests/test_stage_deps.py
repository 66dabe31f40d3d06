"""The stage graph cannot go stale: each stage's code deps in dvc.yaml are exactly the project modules
it imports, and a stage can read only the params its entry declares."""
import pickle
from pathlib import Path

import pytest
import yaml

from pipeline.config.code_deps import closure, code_deps, cover, is_code_dep, rewrite
from pipeline.config.params import parse
from pipeline.config.stage_params import UndeclaredParamError, declared_params, restrict
from tests.conftest import ROOT

DVC = ROOT / "dvc.yaml"


def _stages():
    return yaml.safe_load(DVC.read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(code_deps(DVC)))
def test_code_deps_are_the_stage_import_closure(stage):
    spec = _stages()[stage]
    listed = [d if isinstance(d, str) else next(iter(d)) for d in (spec.get("do") or spec)["deps"]]
    code = {d for d in listed if is_code_dep(d, ROOT)}
    assert code == set(code_deps(DVC)[stage]), (
        f"dvc.yaml stages.{stage} code deps differ from the modules the stage imports; "
        f"run `python -m pipeline.config.code_deps --write`")


def test_dvc_yaml_is_what_the_generator_writes():
    assert rewrite(DVC) == DVC.read_text()


def _package(tmp_path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_closure_follows_function_imports_registry_strings_and_parent_packages(tmp_path):
    root = _package(tmp_path, {
        "pipeline/__init__.py": "",
        "pipeline/stages/__init__.py": "",
        "pipeline/stages/run.py": "def main():\n    from pipeline.lazy import f\n",
        "pipeline/lazy.py": "REGISTRY = {'x': 'modalities.kind.impl:Impl'}\n",
        "pipeline/unused.py": "x = 1\n",
        "modalities/__init__.py": "'''package'''\n",
        "modalities/kind/__init__.py": "",
        "modalities/kind/impl.py": "from devices import io\n",
        "modalities/kind/other.py": "x = 1\n",
        "devices/__init__.py": "",
        "devices/io.py": "import json\n",
    })
    files = {p.as_posix() for p in closure("pipeline.stages.run", root)}
    assert files == {"pipeline/__init__.py", "pipeline/stages/__init__.py", "pipeline/stages/run.py",
                     "pipeline/lazy.py", "modalities/__init__.py", "modalities/kind/__init__.py",
                     "modalities/kind/impl.py", "devices/__init__.py", "devices/io.py"}
    # a folder only where all of it is imported (empty package markers aside)
    assert cover(closure("pipeline.stages.run", root), root) == [
        "pipeline/lazy.py", "pipeline/stages", "modalities/__init__.py", "modalities/kind/impl.py", "devices"]


TINY = {"modalities": {"image": {}, "text": {}},
        "tasks": {"digits": {"modality": "image"}, "sentiment": {"modality": "text"}}}


def test_foreach_params_are_expanded_with_the_item():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    declared = declared_params("finetune", "adas", raw, DVC)
    assert "tasks.adas" in declared and "modalities.scenes" in declared


def test_a_stage_reads_declared_params_and_nothing_else():
    params = restrict(parse(TINY), "finetune", ["seed", "finetune", "tasks.digits", "modalities.image"])
    assert params.seed == 0 and params.tasks["digits"].modality == "image"
    assert params.optim("finetune", "image").epochs == params.finetune.epochs  # methods read through the view
    assert "sentiment" in params.tasks  # whether a key exists is not a read
    with pytest.raises(UndeclaredParamError, match=r"stage 'finetune' reads params key 'tasks.sentiment'.*dvc.yaml"):
        params.tasks["sentiment"]
    with pytest.raises(UndeclaredParamError, match=r"'pretrain'"):
        params.pretrain
    with pytest.raises(UndeclaredParamError, match=r"'modalities.text'"):
        params.modality("text")
    with pytest.raises(UndeclaredParamError, match=r"'tasks'"):
        list(params.tasks)


def test_the_restricted_view_survives_pickling():  # the export stage sends it to its worker processes
    params = pickle.loads(pickle.dumps(restrict(parse(TINY), "export", ["seed", "tasks.digits"])))
    assert params.seed == 0 and params.tasks["digits"].modality == "image"
    with pytest.raises(UndeclaredParamError):
        params.export
