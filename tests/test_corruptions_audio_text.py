import difflib
import random

import numpy as np
import pytest
import torch
import torchaudio

from modalities.audio import corruptions as audio_corruptions
from modalities.audio import machines
from modalities.corruptions import SEVERITIES
from modalities.text import corruptions as text_corruptions
from pipeline.config.params import parse

RATE = 16000
SNR_DB = {1: 20.0, 2: 10.0, 3: 5.0, 4: 0.0, 5: -5.0}


def audio_params(**audio):
    return parse({"modalities": {"audio": audio}, "tasks": {"kws": {"modality": "audio"}}}).modalities["audio"]


@pytest.fixture(scope="module")
def audio_table():
    return audio_corruptions.corruptions(audio_params())


def tone(freq, amp=0.1, seconds=1.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def clips():
    """A few tones, a loud and a quiet random clip, and a silent one."""
    rng = np.random.default_rng(3)
    return np.stack([tone(220, 0.05), tone(1000, 0.1), tone(3000, 0.02),
                     np.clip(rng.standard_normal(RATE) * 0.5, -1, 1).astype(np.float32),
                     (rng.standard_normal(RATE) * 1e-3).astype(np.float32), np.zeros(RATE, np.float32)])


def test_audio_names(audio_table):
    assert list(audio_table) == ["noise", "white_noise", "telephone", "clipping", "gain", "time_shift"]


def test_audio_shape_dtype_range_determinism_and_identity(audio_table):
    x = clips()
    before = x.copy()
    for name, corruption in audio_table.items():
        clean = corruption(x, 0, seed=5)
        assert clean is not x and np.array_equal(clean, x), name
        for severity in SEVERITIES:
            out = corruption(x, severity, seed=5)
            assert out.shape == x.shape and out.dtype == np.float32, (name, severity)
            assert np.isfinite(out).all() and np.abs(out).max() <= 1.0, (name, severity)
            assert not np.array_equal(out, x), (name, severity)
            assert np.array_equal(out, corruption(x, severity, seed=5)), (name, severity)
            assert np.array_equal(out[-1], x[-1]) or name == "telephone", (name, severity)  # silence stays silent
        assert np.array_equal(x, before), f"{name} changed its input"
    for name in ("noise", "white_noise", "time_shift"):
        assert not np.array_equal(audio_table[name](x, 3, seed=5), audio_table[name](x, 3, seed=6)), name


def measured_snr_db(clean, corrupted):
    noise = corrupted.astype(np.float64) - clean
    return 10 * np.log10((clean.astype(np.float64) ** 2).mean(1) / (noise ** 2).mean(1))


@pytest.mark.parametrize("name", ["noise", "white_noise"])
def test_noise_is_mixed_at_the_stated_snr(audio_table, name):
    x = np.stack([tone(f, a) for f, a in ((220, 0.05), (1000, 0.1), (3000, 0.02), (440, 0.08))])
    for severity in SEVERITIES:
        out = audio_table[name](x, severity, seed=1)
        assert np.abs(out).max() < 1.0  # no rescaling, so corrupted - clean is the noise
        np.testing.assert_allclose(measured_snr_db(x, out), SNR_DB[severity], atol=0.5, err_msg=f"{name} {severity}")


def test_noise_windows_come_from_all_four_machine_recordings():
    recordings = audio_corruptions.machine_noise(RATE)
    assert len(recordings) == len(machines.MACHINES) == 4
    rows = audio_corruptions._segments(recordings, 64, RATE, np.random.default_rng(0))
    used = set()
    for row in rows:
        found = [k for k, rec in enumerate(recordings)
                 if (np.lib.stride_tricks.sliding_window_view(rec, 8) == row[:8]).all(1).any()]
        assert len(found) == 1
        used.add(found[0])
    assert used == {0, 1, 2, 3}


def test_missing_machine_recordings_raise(monkeypatch, tmp_path):
    monkeypatch.setattr(machines, "OPENSFX_CAT", tmp_path / "opensfx.cat")
    monkeypatch.setattr(machines, "machine_recording", machines.machine_recording.__wrapped__)  # no cached result
    noise = audio_corruptions.corruptions(audio_params(sample_rate=8000))["noise"]
    with pytest.raises(machines.MachineSoundError, match=r"noise.*opensfx\.cat.*catcodec"):
        noise(np.stack([tone(1000)]), 3)


def test_telephone_band(audio_table):
    x = np.stack([tone(100), tone(1000), tone(6000)])
    out = audio_table["telephone"](x, 5)
    kept = (out.astype(np.float64) ** 2).sum(1) / (x.astype(np.float64) ** 2).sum(1)
    assert kept[0] < 0.05 and kept[2] < 0.1 and kept[1] > 0.9, kept
    # the FFT convolution equals torchaudio's biquads run in turn
    direct = torch.from_numpy(x)
    for q in audio_corruptions.BUTTERWORTH_Q:
        direct = torchaudio.functional.lowpass_biquad(torchaudio.functional.highpass_biquad(direct, RATE, 300.0, q),
                                                      RATE, 3400.0, q)
    np.testing.assert_allclose(out, direct.numpy(), atol=1e-4)
    six_khz = [(audio_table["telephone"](x, s)[2] ** 2).sum() for s in SEVERITIES]
    assert all(a > b for a, b in zip(six_khz, six_khz[1:]))


def test_clipping_gain_and_time_shift(audio_table):
    x = np.stack([tone(997, 0.5)])  # not a divisor of the rate: the samples cover every phase
    for severity, drive in {1: 1.5, 5: 10.0}.items():
        out = audio_table["clipping"](x, severity)
        assert np.abs(out).max() == 1.0
        assert np.isclose((np.abs(out) == 1.0).mean(), 1 - 2 / np.pi * np.arcsin(1 / drive), atol=0.01)
    np.testing.assert_allclose(audio_table["gain"](x, 5), x * 10 ** (-30 / 20), rtol=1e-6)
    shifted = audio_table["time_shift"](np.ones((8, RATE), np.float32), 3)
    np.testing.assert_array_equal((shifted == 0).sum(1), int(0.3 * RATE))


# ---- text ----------------------------------------------------------------------------------------------

WORDS = ("the movie was great terrible plot acting I loved it not really boring, funny! wonderful; "
         "don't can't why? yes Paris 2024 quick-witted").split()


def sentences(n=100, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 30))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def text_table():
    return text_corruptions.corruptions(None)


def test_text_names(text_table):
    assert list(text_table) == ["typos", "word_dropout", "casing", "punctuation"]


def test_text_types_identity_and_determinism(text_table):
    texts = sentences(40) + ["", "   ", "ok", "?!"]
    for name, corruption in text_table.items():
        clean = corruption(texts, 0)
        assert clean == texts and clean is not texts, name
        for severity in SEVERITIES:
            random.seed(severity)  # global generators must not matter
            np.random.seed(severity)
            out = corruption(texts, severity, seed=2)
            assert isinstance(out, list) and len(out) == len(texts), (name, severity)
            assert all(isinstance(t, str) for t in out), (name, severity)
            assert out[-4] == "", (name, severity)
            assert out[:40] != texts[:40], (name, severity)
            random.seed(99)
            np.random.seed(99)
            assert out == corruption(texts, severity, seed=2), (name, severity)
        assert corruption(texts, 3, seed=2) != corruption(texts, 3, seed=3), name


def test_text_rejects_non_strings(text_table):
    with pytest.raises(TypeError, match="item 1 is int"):
        text_table["typos"](["fine", 3], 1)


def test_text_corruption_rate_grows_with_severity(text_table):
    texts = sentences()
    for name, corruption in text_table.items():
        rates = []
        for severity in (0, *SEVERITIES):
            out = corruption(texts, severity, seed=4)
            rates.append(np.mean([1 - difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
                                  for a, b in zip(texts, out)]))
        assert rates[0] == 0 and all(a < b for a, b in zip(rates, rates[1:])), (name, np.round(rates, 3))


def test_word_dropout_keeps_a_word_and_typos_use_keyboard_neighbours(text_table):
    out = text_table["word_dropout"](["one two three"] * 50, 5, seed=0)
    assert all(t.strip() and set(t.split()) <= {"one", "two", "three"} for t in out)
    assert text_corruptions.NEIGHBOURS["s"] == "adwezx" and text_corruptions.NEIGHBOURS["Q"] == "W12A"
    typo = text_table["typos"](["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] * 20, 5, seed=0)
    assert set("".join(typo)) <= set("a" + text_corruptions.NEIGHBOURS["a"]) and any(len(t) != 40 for t in typo)
