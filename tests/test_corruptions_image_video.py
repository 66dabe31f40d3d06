"""Image and video corruptions: seeded, identity at severity 0, shape and dtype kept, harsher with severity."""
import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modalities.image import corruptions as image
from modalities.video import corruptions as video

IMAGE = image.corruptions()
VIDEO = video.corruptions()
TABLES = {"image": IMAGE, "video": VIDEO}
RANDOM = {"gaussian_noise", "occlusion", "frame_noise", "dropped_frames", "duplicated_frames", "temporal_jitter"}
# PSNR against the clean batch falls strictly with severity for these; none saturates on the test batches
# (brightness would on an all-white image, compression on pure noise). Occlusion falls in expectation, as
# each severity draws its own rectangles: batches of 32 and 16 images make it strict.
MONOTONE = {"image": set(IMAGE), "video": {"frame_noise", "frame_blur", "compression"}}


def field(rng, n, c, h, w):
    """Smooth random content with one sharp bright square per image, in uint8: what blur and codecs act on."""
    coarse = torch.from_numpy(rng.uniform(0, 200, (n, c, 5, 5)).astype(np.float32))
    x = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).numpy()
    for i in range(n):
        top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
        x[i, :, top : top + h // 3, left : left + w // 3] = 255
    return x.astype(np.uint8)


def clips(n=3, c=1, t=8, size=32, seed=0):
    """The field panning right two pixels a frame: every frame differs from every other."""
    rng = np.random.default_rng(seed)
    wide = field(rng, n, c, size, size + 2 * t)
    return np.ascontiguousarray(np.stack([wide[..., 2 * k : 2 * k + size] for k in range(t)], axis=2))


BATCHES = {
    "grey28": field(np.random.default_rng(0), 32, 1, 28, 28),
    "rgb64": field(np.random.default_rng(1), 16, 3, 64, 64),
    "clip": clips(),
}
CASES = [("image", n, b) for n in IMAGE for b in ("grey28", "rgb64")] + [("video", n, "clip") for n in VIDEO]
MONOTONE_CASES = [case for case in CASES if case[1] in MONOTONE[case[0]]]


def psnr(clean, corrupted):
    mse = ((clean.astype(np.float64) - corrupted) ** 2).mean()
    return np.inf if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_names():
    assert set(IMAGE) == {"gaussian_noise", "blur", "contrast", "brightness", "jpeg", "occlusion"}
    assert set(VIDEO) == {"frame_noise", "frame_blur", "dropped_frames", "duplicated_frames", "temporal_jitter",
                          "compression"}


@pytest.mark.parametrize("kind,name,batch", CASES)
def test_shape_dtype_identity_and_input_untouched(kind, name, batch):
    x, table = BATCHES[batch], TABLES[kind]
    before = x.copy()
    clean = table[name](x, 0, seed=3)
    assert clean is not x and np.array_equal(clean, x)
    for severity in (1, 2, 3, 4, 5):
        y = table[name](x, severity, seed=3)
        assert y.shape == x.shape and y.dtype == np.uint8, (severity, y.shape, y.dtype)
        assert not np.array_equal(y, x), f"{name} severity {severity} changed nothing"
    assert np.array_equal(x, before), f"{name} wrote into its input"


@pytest.mark.parametrize("kind,name,batch", CASES)
def test_seeded(kind, name, batch):
    x, corrupt = BATCHES[batch], TABLES[kind][name]
    for severity in (1, 3, 5):
        first = corrupt(x, severity, seed=7)
        assert np.array_equal(first, corrupt(x, severity, seed=7))
        other = corrupt(x, severity, seed=8)
        assert np.array_equal(first, other) != (name in RANDOM), (name, severity)


@pytest.mark.parametrize("kind,name,batch", MONOTONE_CASES)
def test_psnr_falls_with_severity(kind, name, batch):
    x = BATCHES[batch]
    scores = [psnr(x, TABLES[kind][name](x, severity, seed=0)) for severity in (0, 1, 2, 3, 4, 5)]
    assert all(a > b for a, b in zip(scores, scores[1:])), (name, batch, np.round(scores, 2))


def test_mpeg4_fallback_keeps_format_and_falls_with_severity(monkeypatch):
    monkeypatch.setattr(av, "codecs_available", {"mpeg4"})
    assert video.video_codec() == ("mpeg4", "mpeg4")
    x = BATCHES["clip"]
    scores = [psnr(x, VIDEO["compression"](x, severity)) for severity in (0, 1, 2, 3, 4, 5)]
    assert all(a > b for a, b in zip(scores, scores[1:])), np.round(scores, 2)


def test_compression_without_a_codec_says_which(monkeypatch):
    monkeypatch.setattr(av, "codecs_available", {"h264"})
    with pytest.raises(RuntimeError, match="libx264.*mpeg4"):
        VIDEO["compression"](BATCHES["clip"], 1)


def test_compression_keeps_rgb_and_odd_sizes():
    x = clips(n=2, c=3, t=5, size=17)
    for severity in (1, 5):
        y = VIDEO["compression"](x, severity)
        assert y.shape == x.shape and y.dtype == np.uint8
        assert 15 < psnr(x, y) < 45  # a lossy copy, not noise and not the input


@pytest.mark.parametrize("kind,name", [("image", n) for n in IMAGE] + [("video", n) for n in VIDEO])
def test_bad_severity_raises(kind, name):
    for severity in (-1, 6, 2.5):
        with pytest.raises(ValueError, match=f"'{name}': severity {severity}"):
            TABLES[kind][name](BATCHES["clip" if kind == "video" else "grey28"], severity)


def test_wrong_layout_raises():
    with pytest.raises(ValueError, match=r"uint8 \(N, C, H, W\)"):
        IMAGE["blur"](BATCHES["grey28"][:, 0], 1)
    with pytest.raises(ValueError, match=r"uint8 \(N, C, T, H, W\)"):
        VIDEO["dropped_frames"](BATCHES["grey28"], 1)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        IMAGE["jpeg"](np.zeros((1, 2, 8, 8), np.uint8), 1)


def test_frame_blur_is_the_image_blur_on_every_frame():
    x = BATCHES["clip"]
    frames = x.transpose(0, 2, 1, 3, 4).reshape(-1, *x.shape[1:2], *x.shape[3:])
    expected = image.blur(frames, 4).reshape(x.shape[0], x.shape[2], x.shape[1], *x.shape[3:]).transpose(0, 2, 1, 3, 4)
    assert np.array_equal(VIDEO["frame_blur"](x, 4), expected)


def frame_index(x, y):
    """For each clip, the input frame that each output frame is (all input frames differ)."""
    same = (x[:, :, None] == y[:, :, :, None]).all(axis=(1, 4, 5))  # (N, T out, T in)
    assert (same.sum(axis=2) == 1).all(), "an output frame is not exactly one input frame"
    return same.argmax(axis=2)


def test_dropped_frames_freeze_on_the_last_kept_frame():
    x, t = BATCHES["clip"], BATCHES["clip"].shape[2]
    frozen = []
    for severity in (1, 2, 3, 4, 5):
        index = frame_index(x, VIDEO["dropped_frames"](x, severity, seed=1))
        assert (index[:, 0] == 0).all() and (np.diff(index, axis=1) >= 0).all() and (index <= np.arange(t)).all()
        assert ((index == np.arange(t)) | (np.diff(index, axis=1, prepend=-1) == 0)).all()  # kept, or a repeat
        counts = {int((index != np.arange(t)).sum(axis=1)[i]) for i in range(len(x))}
        assert len(counts) == 1
        frozen.append(counts.pop())
    assert frozen == sorted(frozen) and frozen[0] >= 1 and frozen[-1] > frozen[0] and frozen[-1] <= t - 1


def test_duplicated_frames_stretch_the_timeline():
    x, t = BATCHES["clip"], BATCHES["clip"].shape[2]
    repeats = []
    for severity in (1, 2, 3, 4, 5):
        index = frame_index(x, VIDEO["duplicated_frames"](x, severity, seed=1))
        steps = np.diff(index, axis=1)
        assert (index[:, 0] == 0).all() and np.isin(steps, (0, 1)).all()
        counts = set((steps == 0).sum(axis=1).tolist())
        assert len(counts) == 1
        repeats.append(counts.pop())
    assert repeats == sorted(repeats) and repeats[0] >= 1 and repeats[-1] > repeats[0] and repeats[-1] <= t - 1


def test_temporal_jitter_reorders_nearby_frames():
    x, t = clips(n=20), 8
    for severity, spread in zip((1, 2, 3, 4, 5), video.JITTER_SPREAD):
        index = frame_index(x, VIDEO["temporal_jitter"](x, severity, seed=1))
        assert (np.sort(index, axis=1) == np.arange(t)).all()  # every frame once
        assert (np.abs(index - np.arange(t)) < spread).all()
        assert (index != np.arange(t)).any()


def test_compression_repeats_exactly():
    x = BATCHES["clip"]
    first = VIDEO["compression"](x, 2)
    assert all(np.array_equal(first, VIDEO["compression"](x, 2)) for _ in range(30))
