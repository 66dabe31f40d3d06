import pytest
import torch

from modalities import get_modality
from pipeline.training.checkpoint import config_hash
from pipeline.models.loading import fresh_encoder
from pipeline.models.methods import build_objective
from pipeline.training.distributed import TrainingProcess
from pipeline.training.loop import lr_at, train


class Interrupted(Exception):
    pass


def run(params, ckpt_dir, on_epoch_end=None):
    image = get_modality("image", params)
    model = build_objective("mae", fresh_encoder(image, params), image, params)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(96, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    y = torch.zeros(96, dtype=torch.long)
    opt = params.pretrain.model_copy(update={"epochs": 3, "batch_size": 32})
    result = train(model, x, y, image.to_input, opt, params.seed, TrainingProcess(torch.device("cpu")), ckpt_dir,
                   config_hash({"test": 1}), on_epoch_end=on_epoch_end)
    return model, result


def test_resume_after_interruption_matches_uninterrupted_run(tiny_params, tmp_path):
    reference, _ = run(tiny_params, tmp_path / "a")

    def stop_after_first_epoch(epoch):
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(tiny_params, tmp_path / "b", on_epoch_end=stop_after_first_epoch)
    resumed, result = run(tiny_params, tmp_path / "b")
    assert result.resumed_from_epoch == 1
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_checkpoint_from_other_config_is_not_resumed(tiny_params, tmp_path):
    run(tiny_params, tmp_path / "c")
    image = get_modality("image", tiny_params)
    model = build_objective("mae", fresh_encoder(image, tiny_params), image, tiny_params)
    opt = tiny_params.pretrain.model_copy(update={"epochs": 1, "batch_size": 32})
    x = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    result = train(model, x, torch.zeros(64, dtype=torch.long), image.to_input, opt, 0,
                   TrainingProcess(torch.device("cpu")), tmp_path / "c", config_hash({"test": 2}))
    assert result.resumed_from_epoch == 0


def test_batch_larger_than_data_is_a_clear_error(tiny_params, tmp_path):
    image = get_modality("image", tiny_params)
    model = build_objective("mae", fresh_encoder(image, tiny_params), image, tiny_params)
    opt = tiny_params.pretrain.model_copy(update={"batch_size": 128})
    with pytest.raises(ValueError, match="batch_size 128 is larger than the 10 training samples"):
        train(model, torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.zeros(10, dtype=torch.long),
              image.to_input, opt, 0, TrainingProcess(torch.device("cpu")), tmp_path, "h")


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01
