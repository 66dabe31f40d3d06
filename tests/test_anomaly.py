"""Anomaly detection: metrics, thresholds, kNN and reconstruction scorers, export, generators, readers."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from modalities import get_modality
from modalities.audio.anomaly_readers import read_dcase, read_mimii
from modalities.splits import ANOMALY, NORMAL, CorruptFileError, load_anomaly_split, save_anomaly_split
from modalities.video.readers import read_anomaly_folder
from pipeline.tasks.anomaly.scorers import (KnnAnomalyModel, ReconstructionAnomalyModel, TemporalKnnAnomalyModel,
                                            anomaly_metadata, anomaly_scores, banked_distance, embedding_bank,
                                            fixed_masks, temporal_differences, threshold_at_fpr, threshold_report)
from pipeline.tasks.anomaly.task import temporal_scorer
from pipeline.tasks.anomaly.metrics import anomaly_report, auroc, pauc, pauc_mcclish
from pipeline.models.encoder import build_encoder
from pipeline.models.mae import MAE
from pipeline.config.params import parse

RATE = 16000
VIDEO = {"frames": 4, "fps": 10.0, "frame_size": 16, "patch_size": 8, "tubelet_frames": 2}
TINY_ENCODER = {"embed_dim": 32, "depth": 1, "num_heads": 2, "mlp_ratio": 2.0}


def _params(modality: str, **settings):
    return parse({"modalities": {modality: settings}, "tasks": {"t": {"modality": modality}}})


def _modality(modality: str, **settings):
    return get_modality(modality, _params(modality, **settings))


# ---- metrics and threshold ------------------------------------------------------------------------

def test_auroc_and_both_paucs_on_a_hand_computed_case():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.5])
    is_anomaly = np.array([0, 0, 0, 0, 1, 1])
    # pairs: 0.35 beats 3 of 4 normals, 0.5 all 4 -> 7 / 8. The ROC holds TPR 0.5 from FPR 0 to 0.25,
    # so the area over FPR <= 0.1 is 0.05: DCASE's pAUC 0.05 / 0.1; McClish (1 + (0.05 - 0.005) / 0.095) / 2.
    assert auroc(scores, is_anomaly) == pytest.approx(0.875)
    assert pauc(scores, is_anomaly) == pytest.approx(0.5)
    assert pauc_mcclish(scores, is_anomaly) == pytest.approx(0.5 * (1 + 0.045 / 0.095))
    report = anomaly_report(scores, np.array([0, 0, 0, 0, 1, 2]), [NORMAL, "click", "whine"])
    assert report["per_kind"]["click"]["auroc"] == pytest.approx(0.75)
    assert report["per_kind"]["whine"]["auroc"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="both normal and anomalous"):
        auroc(scores[:4], is_anomaly[:4])


def test_threshold_gives_the_requested_false_alarm_rate_on_validation():
    val = np.random.default_rng(0).normal(size=200)
    for fpr in (0.0, 0.05, 0.1, 0.25):
        assert np.mean(val > threshold_at_fpr(val, fpr)) == pytest.approx(fpr)
    test = np.array([-5.0, 0.0, 5.0, 6.0])
    report = threshold_report(val, test, np.array([0, 0, 1, 1]), 0.05)
    assert report["val_false_alarm_rate"] == pytest.approx(0.05)
    assert report["test_false_alarm_rate"] == 0.0 and report["test_detection_rate"] == 1.0


# ---- scorers on planted anomalies ---------------------------------------------------------------------

def _clips(n: int, seed: int, planted: bool) -> torch.Tensor:
    """Model-input clips (n, 1, 4, 16, 16): smooth moving gradients; planted ones get a noisy bright block."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, 16)
    phase = torch.rand(n, 1, 1, 1, 1, generator=g)
    time = torch.arange(4).view(1, 1, 4, 1, 1) * 0.1
    x = 0.3 + 0.4 * ((ramp.view(1, 1, 1, 1, 16) + phase + time) % 1.0).expand(n, 1, 4, 16, 16).clone()
    if planted:
        x[:, :, :, 2:8, 9:15] = torch.rand(n, 1, 4, 6, 6, generator=g)
    return x


@pytest.fixture(scope="module")
def video_setup():
    torch.manual_seed(0)
    params = _params("video", **VIDEO)
    modality = get_modality("video", params)
    encoder = build_encoder(modality, params.encoder.model_copy(update=TINY_ENCODER))
    return modality, encoder


def test_knn_scorer_ranks_planted_anomalies_above_normal_samples(video_setup):
    modality, encoder = video_setup
    model = KnnAnomalyModel(encoder, embedding_bank(encoder, _clips(32, 0, False)), k=3)
    scores = anomaly_scores(model, torch.cat([_clips(8, 1, False), _clips(8, 2, True)]), batch_size=5)
    assert auroc(scores, np.repeat([0, 1], 8)) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        KnnAnomalyModel(encoder, torch.zeros(2, 32), k=3)


class LinearTokens(torch.nn.Module):
    """A stand-in encoder whose tokens are a linear map of each tubelet's mean frame, with no position: its
    pooled features are the same for a clip and the clip played backwards."""

    embed_dim = 8

    def __init__(self, modality):
        super().__init__()
        self.modality, self.frames = modality, modality.tubelet[0]
        tubelet = modality.patchify(modality.example_input(1)).shape[-1]
        self.proj = torch.nn.Linear(tubelet // self.frames, self.embed_dim)

    def forward(self, x):
        tubelets = self.modality.patchify(x)  # (B, N, frames x pixels), frames first
        return self.proj(tubelets.unflatten(-1, (self.frames, -1)).mean(dim=2))

    def features(self, x):
        return self(x).mean(dim=1)


def test_temporal_knn_scorer_sees_reversed_motion_that_pooled_features_cannot(video_setup):
    modality, _ = video_setup
    torch.manual_seed(0)
    encoder = LinearTokens(modality).eval()

    def brightening(n: int, seed: int) -> torch.Tensor:  # each clip brightens at its own rate
        g = torch.Generator().manual_seed(seed)
        start, rate = torch.rand(n, 1, 1, 1, 1, generator=g) * 0.4, 0.05 + torch.rand(n, 1, 1, 1, 1, generator=g) * 0.1
        return (start + rate * torch.arange(4).view(1, 1, 4, 1, 1)).expand(n, 1, 4, 16, 16).contiguous()

    normal = brightening(16, 1)
    x = torch.cat([normal, normal.flip(2)])  # the anomalies: the same clips played backwards (darkening)
    truth = np.repeat([0, 1], 16)
    pooled = KnnAnomalyModel(encoder, embedding_bank(encoder, brightening(64, 0)), k=3)
    temporal = temporal_scorer(encoder, modality, 3, brightening(64, 0))
    assert np.allclose(anomaly_scores(pooled, x)[:16], anomaly_scores(pooled, x)[16:], atol=1e-5)  # blind to it
    assert auroc(anomaly_scores(temporal, x), truth) == 1.0
    assert temporal.describe()["token_grid"] == list(modality.grid) and temporal.describe()["time_axis"] == 0


def test_temporal_differences_follow_the_time_axis_of_the_token_grid():
    class Grid(torch.nn.Module):  # tokens = the input itself, (B, N, D)
        def forward(self, x):
            return x

    tokens = torch.arange(2 * 6 * 1, dtype=torch.float32).view(2, 6, 1)  # a (2 mel, 3 time) grid, row-major
    diffs = temporal_differences(Grid(), tokens, (2, 3), time_axis=1)
    assert diffs.shape == (2, 4) and torch.equal(diffs, torch.ones(2, 4))  # next time step = next token
    assert torch.equal(temporal_differences(Grid(), tokens, (2, 3), time_axis=0), torch.full((2, 3), 3.0))
    assert TemporalKnnAnomalyModel.feature_size((2, 3), 1, 5) == 2 * 2 * 5
    with pytest.raises(ValueError, match="needs? at least 2"):
        TemporalKnnAnomalyModel(Grid(), torch.zeros(2, 4), 1, (2, 1), time_axis=1)


def test_the_bank_product_in_blocks_equals_the_whole_product():
    g = torch.Generator().manual_seed(0)
    features, bank = torch.randn(5, 10, generator=g), torch.nn.functional.normalize(torch.randn(7, 10, generator=g), dim=-1)
    assert torch.allclose(banked_distance(features, bank, 3, [slice(0, 3), slice(3, 6), slice(6, 10)]), banked_distance(features, bank, 3), atol=1e-6)


def test_temporal_knn_on_a_modality_without_time_is_refused():
    image = _modality("image")
    with pytest.raises(ValueError, match="modality 'image' \\(kind image\\) has no known time axis"):
        temporal_scorer(torch.nn.Identity(), image, 1, bank_size=2)


@pytest.fixture(scope="module")
def trained_mae(video_setup):
    """An MAE trained for a few steps on normal clips only (un-normalised pixel targets)."""
    modality, _ = video_setup
    torch.manual_seed(0)
    encoder = build_encoder(modality, _params("video", **VIDEO).encoder.model_copy(update=TINY_ENCODER))
    mae = MAE(encoder, modality, decoder_dim=16, decoder_depth=1, decoder_heads=2, norm_pix_loss=False)
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    normal, g = _clips(64, 3, False), torch.Generator().manual_seed(0)
    for _ in range(60):
        loss = mae(normal, None, g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return mae.eval()


def test_reconstruction_scorer_is_deterministic_and_ranks_planted_anomalies_higher(video_setup, trained_mae):
    modality, _ = video_setup
    model = ReconstructionAnomalyModel(trained_mae, fixed_masks(modality, 4, seed=0), error_map=True)
    x = torch.cat([_clips(8, 4, False), _clips(8, 5, True)])
    scores = anomaly_scores(model, x, batch_size=16)
    assert np.array_equal(scores, anomaly_scores(model, x, batch_size=3))  # fixed masks, batch-independent
    assert torch.equal(fixed_masks(modality, 4, seed=0).ids_keep, model.ids_keep)
    assert auroc(scores, np.repeat([0, 1], 8)) == 1.0
    _, error_map = model(x)
    planted = modality.patchify(_clips(1, 0, True) != _clips(1, 0, False)).any(-1)[0]  # tokens the block touches
    hidden = model.hidden.sum(0) > 0
    assert error_map[8:, planted & hidden].mean() > 3 * error_map[8:, ~planted & hidden].mean()


# ---- export ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(video_setup, trained_mae, tmp_path_factory):
    from export.onnx import export_onnx

    modality, encoder = video_setup
    x = torch.cat([_clips(3, 6, False), _clips(3, 7, True)])
    models = {"knn": KnnAnomalyModel(encoder, embedding_bank(encoder, _clips(16, 0, False)), k=4).eval(),
              "temporal_knn": temporal_scorer(encoder, modality, 4, _clips(16, 0, False)).eval(),
              "reconstruction": ReconstructionAnomalyModel(trained_mae, fixed_masks(modality, 3, seed=1)).eval()}
    folder = tmp_path_factory.mktemp("anomaly")
    out = {}
    for name, model in models.items():
        reference = anomaly_scores(model, x)
        spec = modality.input_spec()
        metadata = {"modality": "video", "input_name": spec["name"], "input_shape": spec["shape"],
                    "input_dtype": spec["dtype"], **anomaly_metadata(model, float(np.median(reference)), 0.1)}
        path = export_onnx(model, x[:2], folder / f"{name}.onnx", metadata, modality.input_spec()["name"],
                           model.output_names, opset=18)  # the project's default: kNN stays on the legacy path
        out[name] = (path, reference)
    return out, x.numpy()


@pytest.mark.parametrize("name", ["knn", "temporal_knn", "reconstruction"])
def test_exported_scorers_give_pytorchs_scores_in_onnxruntime_and_openvino(exported, name, tmp_path):
    import onnxruntime as ort

    from devices.runtimes import open_session
    from export.metadata import read_metadata
    from export.openvino import export_openvino

    models, x = exported
    path, reference = models[name]
    metadata = read_metadata(path)
    assert metadata["task_kind"] == "anomaly" and metadata["threshold"] == pytest.approx(float(np.median(reference)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ort_scores,) = session.run(["score"], {"video": x})
    (ov_scores,) = open_session(export_openvino(path, tmp_path, ["fp32"])["fp32"]).run_all(x)  # f32 on any CPU
    for got in (ort_scores, ov_scores):
        assert got.shape == reference.shape and np.allclose(got, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["knn", "temporal_knn"])
def test_exported_knn_scorer_of_a_video_encoder_takes_int8(exported, tmp_path, name):
    """onnxruntime's INT8 pre-processing (symbolic shape inference) failed on this graph at opset 18."""
    import onnxruntime as ort

    from export.quantize.onnx import quantize_onnx_int8

    models, x = exported
    int8 = quantize_onnx_int8(models[name][0], tmp_path / f"{name}.int8.onnx", x)
    (scores,) = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(["score"], {"video": x})
    assert scores.shape == models[name][1].shape and np.isfinite(scores).all()


# ---- generators ---------------------------------------------------------------------------------------

def _check_generated(splits, kinds, counts):
    assert {name: len(s) for name, s in splits.items()} == counts
    assert not splits["train"].is_anomaly.any() and not splits["val"].is_anomaly.any()
    assert set(splits["test"].y.tolist()) == set(range(len(kinds))) and splits["test"].labels == list(kinds)


def test_video_anomaly_generator_is_deterministic_with_every_kind():
    from modalities.video.anomalies import KINDS, video_anomaly_splits
    from modalities.video.readers import ClipFormat

    fmt = ClipFormat(frames=4, fps=10.0, size=16, channels=1)
    splits = video_anomaly_splits(fmt, 3, 2, 2, 5, seed=1)
    _check_generated(splits, KINDS, {"train": 3, "val": 2, "test": 7})
    test = splits["test"]
    assert test.x.dtype == np.uint8 and test.x.shape == (7, 1, 4, 16, 16)
    again = video_anomaly_splits(fmt, 3, 2, 2, 5, seed=1)
    assert all(np.array_equal(again[n].x, s.x) and np.array_equal(again[n].y, s.y) for n, s in splits.items())
    assert not np.array_equal(video_anomaly_splits(fmt, 3, 2, 2, 5, seed=2)["train"].x, splits["train"].x)
    # the digit is white (255), the background dimmed to at most 0.6 x 255
    appear = test.x[test.y == KINDS.index("appear")][0]
    assert appear[:, 0].max() <= 153 and appear[:, -1].max() > 200
    assert (splits["train"].x.max(axis=(1, 3, 4)) > 160).all()  # normal clips show the digit in every frame
    freeze = test.x[test.y == KINDS.index("freeze")][0]
    assert np.array_equal(freeze[:, -1], freeze[:, -2])  # change frame is 1 or 2 of 4: the last two are equal


def test_machine_sound_generator_is_deterministic_with_every_kind(tmp_path):
    from modalities.audio.machines import KINDS, machine_sound_splits

    modality = _modality("audio")
    splits = machine_sound_splits(modality, 4, 2, 3, 6, seed=0)
    _check_generated(splits, KINDS, {"train": 4, "val": 2, "test": 9})
    test = splits["test"]
    assert test.x.dtype == np.float16 and test.x.shape == (9, 1, 64, 100)
    assert np.array_equal(machine_sound_splits(modality, 4, 2, 3, 6, seed=0)["test"].x, test.x)
    save_anomaly_split(test, tmp_path / "test.npz")
    loaded = load_anomaly_split(tmp_path / "test.npz")
    assert loaded.labels == list(KINDS) and np.array_equal(loaded.x, test.x) and (loaded.source == test.source).all()


# ---- MIMII / DCASE / folder readers -----------------------------------------------------------------------

def _wav(path, freq=440.0, seconds=1.0, rate=RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def _mimii(root):
    for machine_id in ("id_00", "id_02"):
        for i in range(5):
            _wav(root / "fan" / machine_id / "normal" / f"{i:08d}.wav", 300 + 10 * i, rate=22050)
        for i in range(2):
            _wav(root / "fan" / machine_id / "abnormal" / f"{i:08d}.wav", 900)
    return root


def test_mimii_reader_splits_per_machine_id(tmp_path):
    splits = read_mimii(_mimii(tmp_path), "fan", _modality("audio"), "error", [], val_fraction=0.34, seed=0)
    assert {n: len(s) for n, s in splits.items()} == {"train": 4, "val": 2, "test": 8}
    assert splits["test"].is_anomaly.sum() == 4 and not splits["train"].is_anomaly.any()
    assert splits["test"].labels == [NORMAL, ANOMALY] and set(splits["test"].source) == {"id_00", "id_02"}
    assert splits["train"].x.shape[1:] == (1, 64, 100) and splits["train"].x.dtype == np.float16


def test_mimii_bad_inputs_name_the_file_or_folder(tmp_path):
    root, modality = _mimii(tmp_path), _modality("audio")
    with pytest.raises(FileNotFoundError, match="pump.*not found.*fan"):
        read_mimii(root, "pump", modality, "error", [], 0.2, 0)
    bad = root / "fan" / "id_00" / "normal" / "00000009.wav"
    bad.write_bytes(b"not a wav file")
    with pytest.raises(CorruptFileError, match="00000009.wav"):
        read_mimii(root, "fan", modality, "error", [], 0.2, 0)
    skipped = []
    read_mimii(root, "fan", modality, "skip", skipped, 0.2, 0)
    assert skipped == [str(bad)]
    sf.write(str(bad), np.zeros(0, np.float32), RATE)  # a clip with no frames
    with pytest.raises(CorruptFileError, match="00000009.wav.*no samples"):
        read_mimii(root, "fan", modality, "error", [], 0.2, 0)
    (root / "fan" / "id_04" / "normal").mkdir(parents=True)
    with pytest.raises(ValueError, match="id_04/normal: no audio files"):
        read_mimii(root, "fan", modality, "skip", [], 0.2, 0)


def _dcase(root):
    for machine_id in ("id_01", "id_03"):
        for i in range(4):
            _wav(root / "dev_data" / "valve" / "train" / f"normal_{machine_id}_{i:08d}.wav", 300 + 10 * i)
        for kind in ("normal", "anomaly"):
            _wav(root / "dev_data" / "valve" / "test" / f"{kind}_{machine_id}_00000000.wav", 500)
    return root


def test_dcase_reader_and_its_bad_inputs(tmp_path):
    root, modality = _dcase(tmp_path), _modality("audio")
    splits = read_dcase(root, "valve", modality, "error", [], val_fraction=0.25, seed=0)
    assert {n: len(s) for n, s in splits.items()} == {"train": 6, "val": 2, "test": 4}
    assert splits["test"].is_anomaly.tolist() == [True, True, False, False]  # sorted file names
    assert set(splits["val"].source) == {"id_01", "id_03"}
    _wav(root / "dev_data" / "valve" / "train" / "anomaly_id_01_00000009.wav")
    with pytest.raises(ValueError, match="normal clips only.*anomaly_id_01_00000009"):
        read_dcase(root, "valve", modality, "error", [], 0.25, 0)
    (root / "dev_data" / "valve" / "train" / "anomaly_id_01_00000009.wav").unlink()
    _wav(root / "dev_data" / "valve" / "test" / "recording.wav")
    with pytest.raises(ValueError, match="recording.wav: not a DCASE task 2 file name"):
        read_dcase(root, "valve", modality, "error", [], 0.25, 0)


def _write_clip(path, frames: int):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()  # writes the header even when no frame follows
        for k in range(frames):
            image = np.full((32, 32, 3), 40 + 20 * k, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_anomaly_folder_reader_and_clips_without_frames(tmp_path):
    modality = _modality("video", **VIDEO)
    for part, kind in (("train", "normal"), ("train", "normal"), ("test", "normal"), ("test", "freeze")):
        _write_clip(tmp_path / part / kind / f"clip{len(list(tmp_path.rglob('*.avi')))}.avi", 6)
    splits = read_anomaly_folder(tmp_path, modality, "error", [], val_fraction=0.5, seed=0)
    assert {n: len(s) for n, s in splits.items()} == {"train": 1, "val": 1, "test": 2}
    assert splits["test"].labels == [NORMAL, "freeze"] and splits["test"].x.shape == (2, 1, 4, 16, 16)
    _write_clip(tmp_path / "test" / "freeze" / "empty.avi", 0)
    with pytest.raises(CorruptFileError, match="empty.avi: no decodable video frames"):
        read_anomaly_folder(tmp_path, modality, "error", [], 0.5, 0)
    skipped = []
    assert len(read_anomaly_folder(tmp_path, modality, "skip", skipped, 0.5, 0)["test"]) == 2
    assert skipped == [str(tmp_path / "test" / "freeze" / "empty.avi")]
    (tmp_path / "train" / "freeze").mkdir()
    with pytest.raises(ValueError, match="normal only.*freeze"):
        read_anomaly_folder(tmp_path, modality, "error", [], 0.5, 0)


def test_app_predictor_flags_scores_above_the_exported_threshold(exported):
    from devices.predict import Predictor, format_results

    models, x = exported
    path, reference = models["knn"]
    results = Predictor(path).predict(x)
    threshold = float(np.median(reference))
    assert [r["score"] for r in results] == pytest.approx(reference.tolist(), abs=1e-4)
    assert [r["anomalous"] for r in results] == (reference > threshold).tolist()
    assert all(r["threshold"] == pytest.approx(threshold) for r in results)
    assert "threshold" in format_results(results[:1])
