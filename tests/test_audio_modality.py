import csv

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from devices.preprocess import InputSpec
from devices.preprocess.audio import preprocess_audio
from modalities import get_modality
from modalities.audio.readers import ClipFormat, read_clip
from modalities.splits import CorruptFileError, stratified_split
from pipeline.config.params import ParamsError, parse

RATE = 16000


def audio_params(**audio):
    return parse({"modalities": {"audio": audio}, "tasks": {"kws": {"modality": "audio"}}})


def audio(**audio_kwargs):
    return get_modality("audio", audio_params(**audio_kwargs))


def tone(freq, seconds=1.0, rate=RATE, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path, data, rate=RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate)
    return path


def make_speech_commands(root, words=("yes", "no", "cat", "dog"), per_word=6):
    val, test = [], []
    for w, word in enumerate(words):
        for i in range(per_word):
            rel = f"{word}/{i:04d}_nohash_0.wav"
            write(root / rel, tone(300 + 100 * w, seconds=0.7 + 0.1 * (i % 4)))
            (val if i == 0 else test if i == 1 else []).append(rel)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    write(root / "_background_noise_" / "white.wav", np.random.default_rng(0).uniform(-0.3, 0.3, 3 * RATE))


def make_esc50(root, per_fold=2):
    rows = []
    for target, category in enumerate(["dog", "rain"]):
        for fold in range(1, 6):
            for take in range(per_fold):
                name = f"{fold}-{target}{take}-A-{target}.wav"
                write(root / "audio" / name, tone(200 + 500 * target, seconds=2.0, rate=44100), rate=44100)
                rows.append({"filename": name, "fold": fold, "target": target, "category": category,
                             "esc10": "True", "src_file": target, "take": "A"})
    (root / "meta").mkdir(parents=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_folder(root, per_class=10):
    for c, name in enumerate(["bell", "horn"]):
        for i in range(per_class):
            suffix = ("wav", "flac", "ogg")[i % 3]
            write(root / name / f"{i}.{suffix}", tone(400 * (c + 1) + 20 * i, seconds=0.5 + 0.1 * i))


def test_speech_commands_splits_keywords_unknown_and_background(tmp_path):
    make_speech_commands(tmp_path)
    data = audio(source="speech_commands", path=str(tmp_path), keywords=["yes", "no"]).load_raw()
    assert data.splits["train"].labels == ["yes", "no", "unknown"]
    assert {k: len(s) for k, s in data.splits.items()} == {"train": 12, "val": 3, "test": 3}
    assert sorted(data.splits["val"].y.tolist()) == [0, 1, 2]  # unknown capped to one keyword's share
    assert data.splits["train"].x.shape[1:] == (1, 64, 100) and data.splits["train"].x.dtype == np.float16
    assert data.splits["train"].noise.shape == (3, 1, 64, 100)


def test_speech_commands_missing_keyword_is_a_clear_error(tmp_path):
    make_speech_commands(tmp_path)
    with pytest.raises(ValueError, match=r"keywords \['left'\] have no word folder"):
        audio(source="speech_commands", path=str(tmp_path), keywords=["yes", "left"]).load_raw()


def test_esc50_folds_and_resampling(tmp_path):
    make_esc50(tmp_path)
    data = audio(source="esc50", path=str(tmp_path), esc50_val_fold=2, esc50_test_fold=5).load_raw()
    assert data.splits["train"].labels == ["dog", "rain"]
    assert {k: len(s) for k, s in data.splits.items()} == {"train": 12, "val": 4, "test": 4}


def test_folder_of_wav_flac_ogg(tmp_path):
    make_folder(tmp_path)
    data = audio(source="folder", path=str(tmp_path), split={"val": 0.2, "test": 0.2}).load_raw()
    sizes = {k: len(s) for k, s in data.splits.items()}
    assert sizes == {"train": 12, "val": 4, "test": 4}
    assert all(set(s.y.tolist()) == {0, 1} for s in data.splits.values())


def test_empty_class_folders_are_a_clear_error(tmp_path):
    (tmp_path / "bell").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        audio(source="folder", path=str(tmp_path)).load_raw()


def test_file_at_another_rate_is_resampled_and_stereo_mixed_down(tmp_path):
    left, right = tone(1000, rate=8000), np.zeros(8000, np.float32)
    path = write(tmp_path / "stereo.flac", np.stack([left, right], axis=1), rate=8000)
    clip = read_clip(path, ClipFormat(RATE, RATE, "center"))
    assert clip.shape == (RATE,)
    spectrum = np.abs(np.fft.rfft(clip))
    assert abs(np.argmax(spectrum) * RATE / len(clip) - 1000) < 2
    assert np.sqrt(np.mean(clip[2000:-2000] ** 2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.02)


def test_short_clips_padded_long_clips_cropped_around_the_centre(tmp_path):
    fmt = ClipFormat(RATE, RATE, "center")
    short = read_clip(write(tmp_path / "short.wav", np.ones(RATE // 2, np.float32) * 0.5), fmt)
    assert short[: RATE // 4].max() == 0 and short[RATE // 4: 3 * RATE // 4].min() > 0.49
    ramp = np.linspace(-1, 1, 3 * RATE, dtype=np.float32)
    long = read_clip(write(tmp_path / "long.wav", ramp, rate=RATE), fmt)
    assert long[RATE // 2] == pytest.approx(0.0, abs=1e-3)  # the middle second, so 0 stays in the middle
    start = read_clip(tmp_path / "long.wav", ClipFormat(RATE, RATE, "start"))
    assert start[0] == pytest.approx(-1.0, abs=1e-3)


def test_corrupt_file_named_or_skipped(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "bell" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    with pytest.raises(CorruptFileError, match="broken.wav"):
        audio(source="folder", path=str(tmp_path)).load_raw()
    data = audio(source="folder", path=str(tmp_path), on_corrupt="skip").load_raw()
    assert [p.endswith("broken.wav") for p in data.skipped] == [True]
    assert sum(len(s) for s in data.splits.values()) == 20


def export_frontend(modality, path):
    from export.onnx import export_onnx

    module, spec = modality.frontend()
    example = torch.zeros((2, *spec["shape"][1:]))
    return export_onnx(module, example, path, {"role": "frontend"}, input_name=spec["name"],
                       output_names=["features"], opset=17)


def test_exported_frontend_matches_torchaudio(tmp_path):
    import onnxruntime as ort

    m = audio()
    p = m.params
    rng = np.random.default_rng(0)
    waves = np.stack([tone(440) + 0.05 * rng.standard_normal(RATE).astype(np.float32),
                      0.3 * rng.standard_normal(RATE).astype(np.float32)])
    session = ort.InferenceSession(str(export_frontend(m, tmp_path / "frontend.onnx")))
    exported = session.run(None, {"waveform": waves})[0]
    mel = torchaudio.transforms.MelSpectrogram(RATE, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels)
    reference = (torch.log(mel(torch.from_numpy(waves)) + 1e-6) - p.logmel_mean) / p.logmel_std
    reference = reference[:, None, :, : p.frames].numpy()
    assert exported.shape == (2, 1, 64, 100)
    assert np.abs(exported - reference).max() < 2e-4


def test_app_preprocessing_equals_stored_model_input(tmp_path):
    make_folder(tmp_path / "data", per_class=5)
    write(tmp_path / "data" / "bell" / "stereo_8k.wav", np.stack([tone(700, rate=8000), tone(900, rate=8000)], 1),
          rate=8000)
    m = audio(source="folder", path=str(tmp_path / "data"))
    stored = np.concatenate([m.to_input(torch.from_numpy(s.x)).numpy() for s in m.load_raw().splits.values()])
    module, spec = m.frontend()
    frontend = export_frontend(m, tmp_path / "model" / "assets" / "frontend.onnx")
    app_spec = InputSpec("audio", (None, 1, 64, 100), np.dtype("float32"), m.preprocessing(),
                         assets_dir=frontend.parent)
    for path in sorted((tmp_path / "data").rglob("*.*")):
        app = preprocess_audio(path, app_spec)
        assert app.shape == (1, 1, 64, 100) and app.dtype == np.float32
        assert np.abs(stored - app).max(axis=(1, 2, 3)).min() < 5e-3  # stored as float16


def test_patchify_round_trip_and_token_count():
    m = audio()
    x = torch.randn(3, 1, 64, 100)
    tokens = m.patchify(x)
    assert tokens.shape == (3, m.num_tokens, 160) and m.num_tokens == 40
    assert torch.equal(m.unpatchify(tokens), x)
    assert torch.equal(tokens[0, 1], x[0, 0, :16, 10:20].reshape(-1))  # second token: next in time


def test_mae_forward_backward_and_figure():
    from pipeline.models.encoder import build_encoder
    from pipeline.models.mae import MAE

    params = audio_params()
    m = get_modality("audio", params)
    mae = MAE(build_encoder(m, params.encoder), m, 32, 1, 4)
    x = torch.randn(4, 1, 64, 100)
    loss, pred, mask = mae.reconstruct(x, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and mae.encoder.token_embedding.proj.weight.grad is not None
    assert mask.sum(dim=1).tolist() == [32.0] * 4  # 80 % of 40 tokens hidden
    picture = m.reconstruction_figure(x, pred.detach(), mask, normalized=True)
    assert picture.dtype == np.uint8 and picture.shape == (4 * 64, 3 * 100)


def test_simclr_views_deterministic_per_seed_and_different_from_each_other():
    m = audio()
    x = torch.randn(6, 1, 64, 100)
    a = m.simclr_views(x, torch.Generator().manual_seed(3))
    b = m.simclr_views(x, torch.Generator().manual_seed(3))
    c = m.simclr_views(x, torch.Generator().manual_seed(4))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], a[1])
    assert a[0].shape == x.shape and torch.isfinite(a[0]).all()


def test_spec_augment_fills_whole_bands():
    m = audio(augment={"time_masks": 1, "time_mask_frames": 20, "freq_masks": 1, "freq_mask_mels": 10})
    x = torch.randn(8, 1, 64, 100) + 5.0  # nothing is near the fill value 0 by chance
    out = m._spec_augment(x, torch.Generator().manual_seed(0), 1, 20, 1, 10)
    filled = out == m.SPEC_AUGMENT_FILL
    full_frames = filled.all(dim=2).squeeze(1)  # (B, frames): whole frame columns filled
    full_mels = filled.all(dim=3).squeeze(1)  # (B, mels)
    assert full_frames.any() and full_mels.any()
    assert torch.equal(filled, full_frames[:, None, None, :] | full_mels[:, None, :, None])
    assert (full_frames.sum(1) <= 20).all() and (full_mels.sum(1) <= 10).all()


def test_noise_mixing_at_0_db_doubles_the_power():
    m = audio(augment={"noise_prob": 1.0, "snr_db": [0.0, 0.0]})
    x = torch.randn(2, 1, 64, 100)
    noisy = m._add_noise(x, torch.Generator().manual_seed(0))
    assert (noisy >= x - 1e-5).all()
    power = m._power(noisy).mean(dim=(1, 2, 3)) / m._power(x).mean(dim=(1, 2, 3))
    assert torch.allclose(power, torch.full((2,), 2.0), rtol=1e-3)


def test_stratified_split_gives_every_stratum_its_share():
    strata = np.repeat(np.arange(33), 6)
    parts = stratified_split(strata, 0.1, 0.2, seed=0)
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(len(strata)))
    assert len(parts["test"]) == pytest.approx(0.2 * len(strata), abs=1)
    assert len(parts["val"]) == pytest.approx(0.1 * len(strata), abs=1)
    assert np.bincount(strata[parts["test"]], minlength=33).max() <= 2


def test_synthesiser_makes_audible_distinct_clips_with_each_engine():
    from modalities.audio.speech import ENGINES, spoken_keywords

    fmt = ClipFormat(RATE, RATE, "center")
    for engine in ENGINES:
        data = spoken_keywords(["yes", "stop"], 1, fmt, (30.0, 30.0), seed=0, engines=(engine,), bank_size=4)
        assert data.x.shape == (3, RATE) and data.y.tolist() == [0, 1, 2], engine
        rms = np.sqrt((data.x ** 2).mean(axis=1))
        assert (rms > 0.01).all(), engine
        assert np.abs(data.x[0] - data.x[1]).mean() > 0.01, engine
    assert data.noise.shape == (4, RATE)
    again = spoken_keywords(["yes", "stop"], 1, fmt, (30.0, 30.0), seed=0, engines=(engine,), bank_size=4)
    assert np.array_equal(data.x, again.x) and np.array_equal(data.noise, again.noise)


def test_bad_params_are_clear_errors():
    with pytest.raises(ParamsError, match="n_mels .* multiple of patch_mels"):
        audio_params(n_mels=60)
    with pytest.raises(ParamsError, match="multiple of patch_frames"):
        audio_params(patch_frames=16)
    with pytest.raises(ParamsError, match="needs 'path'"):
        audio_params(source="esc50")
    with pytest.raises(ParamsError, match="source"):
        audio_params(source="mp3s")
