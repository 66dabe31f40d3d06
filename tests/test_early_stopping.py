"""Early stopping on the validation metric: the run stops `patience` epochs after its best epoch, ends with
that epoch's weights, and a resumed run knows both (the best weights travel in the checkpoint)."""
import pytest
import torch

from pipeline.config.params import OptimParams
from pipeline.training.checkpoint import config_hash
from pipeline.training.distributed import TrainingProcess
from pipeline.training.loop import train

SCRIPTED_VAL = [0.50, 0.70, 0.60, 0.65, 0.90, 0.95, 0.97, 0.99]  # best at epoch 2, then two epochs without a gain


class Regression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x, y, generator):
        return ((self.linear(x).squeeze(1) - y) ** 2).mean()


class Interrupted(Exception):
    pass


def run(ckpt, patience=2, on_epoch_end=None, snapshots=None, min_epochs=0):
    model = Regression()
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    y = x.sum(1)
    calls = []

    def evaluate():
        if snapshots is not None:
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        calls.append(1)
        return SCRIPTED_VAL[len(calls) - 1 + evaluate.offset]

    evaluate.offset = 0
    opt = OptimParams(epochs=len(SCRIPTED_VAL), batch_size=8, lr=0.01, warmup_epochs=0, patience=patience,
                      min_epochs=min_epochs)

    def go(offset=0):
        evaluate.offset = offset
        return train(model, x, y, lambda t: t, opt, 0, TrainingProcess(torch.device("cpu")), ckpt,
                     config_hash({"test": "early"}), evaluate=evaluate, on_epoch_end=on_epoch_end)

    return model, go


def test_stops_after_patience_and_keeps_the_best_epoch(tmp_path):
    snapshots = []
    model, go = run(tmp_path / "a", snapshots=snapshots)
    result = go()
    assert (result.best_epoch, result.stopped_at_epoch, result.epochs) == (2, 4, 4)
    assert [point[1] for point in result.curve] == SCRIPTED_VAL[:4]
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][name]), name  # the weights evaluated after epoch 2


def test_no_stop_before_min_epochs(tmp_path):
    # epochs 3 and 4 bring no gain, but the run may not stop before epoch 5, where the metric rises again
    model, go = run(tmp_path / "m", min_epochs=5)
    result = go()
    assert (result.best_epoch, result.stopped_at_epoch, result.epochs) == (8, None, 8)


def test_without_patience_every_epoch_runs_and_the_last_weights_stay(tmp_path):
    model, go = run(tmp_path / "b", patience=None)
    result = go()
    assert result.epochs == len(SCRIPTED_VAL) and result.best_epoch is None and result.stopped_at_epoch is None


def test_a_resumed_run_stops_where_the_uninterrupted_one_did(tmp_path):
    reference, go = run(tmp_path / "ref")
    go()

    def interrupt_after_third(epoch):
        if epoch == 3:
            raise Interrupted

    _, go = run(tmp_path / "c", on_epoch_end=interrupt_after_third)
    with pytest.raises(Interrupted):
        go()
    resumed, go = run(tmp_path / "c")
    result = go(offset=3)  # the scripted metric continues at epoch 4
    assert result.resumed_from_epoch == 3 and (result.best_epoch, result.stopped_at_epoch) == (2, 4)
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name
    # and a run that has stopped stays stopped: no epoch is trained again
    again, go = run(tmp_path / "c")
    result = go(offset=4)
    assert result.resumed_from_epoch == 4 and result.epochs == 4
    for (name, a), (_, b) in zip(reference.state_dict().items(), again.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name
