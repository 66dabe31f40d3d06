"""The fine-tuning recipe: weight-decay exclusions, layer-wise learning-rate decay, a learning curve that
survives a resume, and a recipe that learns a small separable problem in a few hundred steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modalities import get_modality
from pipeline.models.loading import fresh_encoder
from pipeline.tasks.classification.model import Classifier, SupervisedObjective
from pipeline.tasks.classification.task import accuracy
from pipeline.training.checkpoint import config_hash
from pipeline.training.distributed import TrainingProcess
from pipeline.training.loop import train
from pipeline.training.param_groups import layer_of, parameter_groups

CPU = TrainingProcess(torch.device("cpu"))


def _classifier(params, depth: int = 3):
    params = params.model_copy(update={"encoder": params.encoder.model_copy(update={"depth": depth})})
    image = get_modality("image", params)
    return image, Classifier(fresh_encoder(image, params), 2)


def test_no_weight_decay_on_biases_and_norms_and_decay_per_block(tiny_params):
    _, model = _classifier(tiny_params, depth=3)
    groups = parameter_groups(model, weight_decay=0.05, layer_decay=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert sum(len(g["params"]) for g in groups) == len(names)
    for name, param in names.items():
        group = by_param[id(param)]
        one_d = param.ndim == 1 or name.endswith(".bias")
        assert group["weight_decay"] == (0.0 if one_d else 0.05), name
        assert group["lr_scale"] == 0.5 ** (4 - layer_of(name, 3)), name
    embedding = next(n for n in names if "token_embedding" in n)
    top = next(n for n in names if "encoder.blocks.2." in n)
    head = next(n for n in names if not n.startswith("encoder."))
    assert by_param[id(names[embedding])]["lr_scale"] == 0.5 ** 4
    assert by_param[id(names[top])]["lr_scale"] == 0.5 and by_param[id(names[head])]["lr_scale"] == 1.0


def test_layer_decay_one_gives_every_parameter_the_base_rate(tiny_params):
    _, model = _classifier(tiny_params)
    assert {g["lr_scale"] for g in parameter_groups(model, 0.05, 1.0)} == {1.0}


def _separable(n: int, seed: int):
    """Digits-sized images: the class is which half of the image is bright, under noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 120, (n, 1, 28, 28))
    for i, label in enumerate(y):
        x[i, :, :, 14 * label:14 * label + 14] += 100
    return torch.from_numpy(x.astype(np.uint8)), torch.from_numpy(y.astype(np.int64))


def _fit(params, folder, epochs: int, evaluate_on=None):
    image, model = _classifier(params, depth=1)
    x, y = _separable(256, seed=0)
    opt = params.finetune.model_copy(update={"epochs": epochs, "batch_size": 16, "lr": 1e-3, "warmup_epochs": 1,
                                             "layer_decay": 0.75})
    curve_of = None
    if evaluate_on is not None:
        vx, vy = evaluate_on

        def curve_of():
            with torch.no_grad():
                return accuracy(model.eval()(image.to_input(vx)).numpy(), vy.numpy())

    objective = SupervisedObjective(model, image)
    result = train(objective, x, y, image.to_input, opt, 0, CPU, folder, config_hash({"recipe": epochs}),
                   evaluate=curve_of, param_groups=parameter_groups(objective, opt.weight_decay, opt.layer_decay))
    return image, model, result


def test_the_recipe_learns_a_separable_problem_in_a_few_hundred_steps(tiny_params, tmp_path):
    val = _separable(128, seed=1)
    image, model, result = _fit(tiny_params, tmp_path / "ckpt", epochs=12, evaluate_on=val)
    assert result.steps == 12 * 16
    assert len(result.curve) == 12 and [s for s, _ in result.curve] == [16 * (e + 1) for e in range(12)]
    test_x, test_y = _separable(128, seed=2)
    with torch.no_grad():
        assert accuracy(model.eval()(image.to_input(test_x)).numpy(), test_y.numpy()) > 0.9
    assert result.curve[-1][1] > 0.9


def test_learning_curve_survives_a_resume(tiny_params, tmp_path):
    val = _separable(64, seed=1)
    _, _, first = _fit(tiny_params, tmp_path / "ckpt", epochs=2, evaluate_on=val)
    _, _, again = _fit(tiny_params, tmp_path / "ckpt", epochs=2, evaluate_on=val)  # nothing left to train
    assert again.resumed_from_epoch == 2 and again.curve == first.curve and len(first.curve) == 2


@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_layer_decay_outside_zero_one_is_refused(tiny_params, bad):
    with pytest.raises(ValueError, match="layer_decay"):
        tiny_params.finetune.model_validate({**tiny_params.finetune.model_dump(), "layer_decay": bad})
