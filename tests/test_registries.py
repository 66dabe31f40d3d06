"""A new task kind or modality kind is a new package plus registry lines: the stages do not change."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from modalities import KINDS as MODALITY_KINDS
from modalities.splits import Split
from pipeline.config import paths
from pipeline.config.params import parse
from pipeline.tasks import kinds, registry
from tests.conftest import ROOT

COUNTING_PARAMS = textwrap.dedent('''
    from pipeline.tasks.kinds import TaskSpec
    SPEC = TaskSpec(head="counting", metric="accuracy", data="classification")
''')
COUNTING_TASK = textwrap.dedent('''
    from pipeline.tasks.base import Fitted, Task
    from pipeline.tasks.classification.model import Classifier
    from pipeline.tasks.classification.task import accuracy

    class CountingTask(Task):
        head = "counting"
        def build(self, encoder, modality, params, config):
            return Classifier(encoder, len(config["labels"]))
        def fit(self, encoder, job):
            return Fitted(Classifier(encoder, len(job.splits["train"].labels)), cost={"epochs": 0})
        def score(self, task_params, split, config, detail=False):
            return lambda outputs: {"test_metric": accuracy(outputs[0], split.y)}
        def baseline(self, task_params, modality, splits, params):
            return {"model": "majority class", "features": "none", "test_metric": 0.0}
        def metadata(self, task_params, model, config):
            return {"output": "logits"}
        def report_section(self, params, load):
            return ["## Counting"]
''')


@pytest.fixture
def counting_kind(tmp_path, monkeypatch):
    package = tmp_path / "counting_kind"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "params.py").write_text(COUNTING_PARAMS)
    (package / "task.py").write_text(COUNTING_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(kinds.KINDS, "counting", "counting_kind.params")
    monkeypatch.setitem(registry.IMPLEMENTATIONS, "counting", "counting_kind.task:CountingTask")
    kinds.task_specs.cache_clear()
    yield
    kinds.task_specs.cache_clear()


def test_a_new_task_kind_runs_through_the_finetune_stage_and_the_report(counting_kind, tmp_path, monkeypatch):
    from pipeline.models.loading import fresh_encoder
    from pipeline.report.summary import summary
    from pipeline.stages.finetune import finetune
    from pipeline.training.checkpoint import save_weights
    from modalities import get_modality

    params = parse({"methods": ["random"], "modalities": {"image": {}},
                    "tasks": {"count": {"modality": "image", "head": "counting"}}})
    assert params.tasks["count"].metric == "accuracy"
    monkeypatch.chdir(tmp_path)
    image = get_modality("image", params)
    rng = np.random.default_rng(0)
    splits = {s: Split(rng.integers(0, 255, (6, 1, 28, 28), dtype=np.uint8), np.arange(6) % 2, ["one", "two"])
              for s in ("train", "val", "test")}
    paths.data_dir("image").mkdir(parents=True)
    (paths.data_dir("image") / "manifest.json").write_text(json.dumps({"splits": {"train": {"sha256": "x"}}}))
    save_weights(fresh_encoder(image, params), paths.pretrain_dir("image", "random") / "encoder.safetensors")

    metrics = finetune(params, "count", "random", image, splits)
    assert metrics["head"] == "counting" and 0 <= metrics["test_metric"] <= 1
    assert (paths.finetune_dir("count", "random") / "model.safetensors").is_file()
    assert "## Counting" in summary(params)


def test_an_unregistered_head_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown head 'counting' \(known: classification, detection, anomaly\)"):
        parse({"modalities": {"image": {}}, "tasks": {"count": {"modality": "image", "head": "counting"}}})


def test_a_new_modality_kind_registers_with_one_line(tmp_path):
    """In a fresh process: the params schema is built from the registry when it is first imported."""
    package = tmp_path / "points_kind"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "params.py").write_text(textwrap.dedent('''
        from typing import Literal
        from modalities.image.params import ImageParams
        class PointsParams(ImageParams):
            kind: Literal["points"] = "points"
    '''))
    (package / "modality.py").write_text(textwrap.dedent('''
        from modalities.image.modality import ImageModality
        class PointsModality(ImageModality):
            kind = "points"
    '''))
    script = textwrap.dedent('''
        import modalities
        modalities.KINDS["points"] = modalities.Kind("points_kind.modality:PointsModality",
                                                     "points_kind.params:PointsParams")
        from pipeline.config.params import parse
        params = parse({"modalities": {"lidar": {"kind": "points"}}, "tasks": {"t": {"modality": "lidar"}}})
        modality = modalities.get_modality("lidar", params)
        print(type(modality).__name__, modality.name, params.modality("lidar").kind)
    ''')
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["PointsModality", "lidar", "points"]
    assert "points" not in MODALITY_KINDS  # registered in that process only
