import av
import numpy as np
import pytest
import torch

from devices.preprocess import InputSpec, preprocess
from devices.preprocess.video import read_clip  # also registers the "video" app-side preprocessor
from modalities import get_modality
from modalities.sincos import sincos_3d
from modalities.splits import CorruptFileError
from modalities.video.embedded import MOTIONS, embedded_motion_clips
from modalities.video.readers import ClipFormat
from pipeline.models.encoder import build_encoder
from pipeline.models.mae import MAE
from pipeline.config.params import EncoderParams, ParamsError, parse

SMALL = {"frames": 4, "fps": 10.0, "frame_size": 16, "patch_size": 8, "tubelet_frames": 2}


def video_params(**video):
    return parse({"modalities": {"video": {**SMALL, **video}}, "tasks": {"t": {"modality": "video"}}})


def video_modality(**video):
    return get_modality("video", video_params(**video))


def write_clip(path, n_frames=12, fps=10, size=(40, 48), seed=0):
    """A real encoded clip: a bright square moving right over noise, different per seed."""
    rng = np.random.default_rng(seed)
    codec = "libx264" if path.suffix == ".mp4" else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        background = rng.integers(0, 120, (*size, 3), dtype=np.uint8)
        for k in range(n_frames):
            frame = background.copy()
            frame[10:20, 4 + 3 * k : 14 + 3 * k] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_class_folders(root, classes=("jump", "run"), per_class=5, corrupt=None, short=None):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            write_clip(root / name / f"{i}.{'mp4' if i % 2 else 'avi'}", seed=10 * c + i)
    if corrupt:
        (root / classes[0] / corrupt).write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    if short:
        write_clip(root / classes[0] / short, n_frames=2)


def all_clips(data):
    return sum(len(s) for s in data.splits.values())


# ---- real formats -----------------------------------------------------------------------------------

def test_class_folders_of_mp4_and_avi_load_and_split(tmp_path):
    make_class_folders(tmp_path)
    data = video_modality(source="folder", path=str(tmp_path), channels=3, split={"val": 0.2, "test": 0.2}).load_raw()
    assert all_clips(data) == 10 and min(len(s) for s in data.splits.values()) > 0
    x = data.splits["train"].x
    assert x.shape[1:] == (3, 4, 16, 16) and x.dtype == np.uint8
    assert data.splits["train"].labels == ["jump", "run"]


def test_presplit_class_folders_keep_their_test_split(tmp_path):
    make_class_folders(tmp_path / "train", per_class=4)
    make_class_folders(tmp_path / "test", per_class=1)
    data = video_modality(source="folder", path=str(tmp_path)).load_raw()
    assert len(data.splits["test"]) == 2 and len(data.splits["train"]) + len(data.splits["val"]) == 8


def test_ucf101_split_lists(tmp_path):
    lists, clips = tmp_path / "ucfTrainTestlist", tmp_path / "UCF-101"
    lists.mkdir()
    names = {c: [f"{c}/v_{c}_g0{g}_c01.avi" for g in range(1, 5)] for c in ("Biking", "Diving")}
    for c, files in names.items():
        (clips / c).mkdir(parents=True)
        for i, name in enumerate(files):
            write_clip(clips / name, seed=i)
    (lists / "classInd.txt").write_text("1 Biking\n2 Diving\n")
    (lists / "trainlist01.txt").write_text("".join(f"{n} {i}\n" for i, c in enumerate(names, 1) for n in names[c][:3]))
    (lists / "testlist01.txt").write_text("".join(f"{names[c][3]}\n" for c in names))
    data = video_modality(source="ucf101", path=str(tmp_path), split={"val": 0.3, "test": 0.2}).load_raw()
    assert data.splits["test"].y.tolist() == [0, 1]
    assert len(data.splits["train"]) + len(data.splits["val"]) == 6
    assert data.splits["train"].labels == ["Biking", "Diving"]


def test_empty_ucf101_split_is_an_error(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 Biking\n")
    (tmp_path / "trainlist01.txt").write_text("")
    with pytest.raises(ValueError, match="trainlist01.txt: the train split lists no clips"):
        video_modality(source="ucf101", path=str(tmp_path)).load_raw()


def test_folder_without_classes_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="one sub-folder per class"):
        video_modality(source="folder", path=str(tmp_path)).load_raw()


def test_corrupt_clip_is_an_error_naming_the_file(tmp_path):
    make_class_folders(tmp_path, corrupt="broken.mp4")
    with pytest.raises(CorruptFileError, match="broken.mp4"):
        video_modality(source="folder", path=str(tmp_path)).load_raw()


def test_corrupt_and_short_clips_skipped_and_counted_when_asked(tmp_path):
    make_class_folders(tmp_path, corrupt="broken.mp4", short="short.avi")
    data = video_modality(source="folder", path=str(tmp_path), on_corrupt="skip").load_raw()
    assert sorted(p.rsplit("/", 1)[1] for p in data.skipped) == ["broken.mp4", "short.avi"]
    assert all_clips(data) == 10


def test_too_short_clip_names_the_file(tmp_path):
    make_class_folders(tmp_path, short="short.avi")
    with pytest.raises(CorruptFileError, match=r"short.avi: clip too short: 0.20 s, the model needs 0.40 s"):
        video_modality(source="folder", path=str(tmp_path)).load_raw()


def test_frames_sampled_at_fps_from_the_clip_centre(tmp_path):
    path = write_clip(tmp_path / "c.mp4", n_frames=12, fps=10, size=(32, 64))
    every_other = read_clip(path, frames=4, fps=5.0, size=32, color="grayscale")  # 0.8 s of the 1.2 s clip
    consecutive = read_clip(path, frames=4, fps=None, size=32, color="grayscale")
    # the bright square moves 3 px a frame
    assert np.diff(right_edges(every_other)).tolist() == pytest.approx([6, 6, 6], abs=1)
    assert np.diff(right_edges(consecutive)).tolist() == pytest.approx([3, 3, 3], abs=1)


def right_edges(clip):
    return [31 - int(np.argmax(frame[15, ::-1, 0] > 200)) for frame in clip]


# ---- tokens, masking, views, MAE -----------------------------------------------------------------------

def test_tubelet_patchify_round_trip_and_token_count():
    m = video_modality(frames=8, frame_size=32, channels=3)
    x = torch.rand(2, 3, 8, 32, 32)
    tokens = m.patchify(x)
    assert tokens.shape == (2, m.num_tokens, m.target_dim) == (2, 64, 2 * 8 * 8 * 3)
    assert torch.equal(m.unpatchify(tokens), x)
    assert m.token_embedding(24)(x).shape == (2, 64, 24)
    # the token order of the embedding and of the targets agree: token 1 is the second patch along width
    assert torch.equal(tokens[:, 1].reshape(2, 2, 8, 8, 3)[..., 0], x[:, 0, :2, :8, 8:16])


def test_sincos_3d_gives_every_tubelet_its_own_position():
    pos = sincos_3d(4, 4, 4, 128)
    assert pos.shape == (64, 128)
    assert torch.cdist(pos, pos).add(torch.eye(64)).min() > 0.1


def test_tube_masking_hides_the_same_spatial_positions_in_every_frame_group():
    m = video_modality(frames=8, frame_size=32, mask_ratio=0.75)
    mask = m.mask(torch.zeros(5, 1, 8, 32, 32), torch.Generator().manual_seed(0))
    grid = mask.mask.view(5, 4, 16)  # (clip, time, space)
    assert torch.equal(grid, grid[:, :1].expand_as(grid))
    assert grid[:, 0].sum(dim=1).tolist() == [12.0] * 5  # 75 % of 16 spatial positions
    assert mask.ids_keep.shape == (5, 16)
    assert not torch.equal(grid[0], grid[1])  # each clip draws its own tubes


def test_simclr_views_keep_a_static_clip_static_and_are_seeded():
    m = video_modality(frames=8, frame_size=32, channels=3, augment={"noise_std": 0.0, "max_rotation_deg": 20})
    frame = torch.rand(6, 3, 1, 32, 32)
    static = frame.expand(-1, -1, 8, -1, -1).contiguous()
    v1, v2 = m.simclr_views(static, torch.Generator().manual_seed(1))
    for v in (v1, v2):
        assert v.shape == static.shape
        assert torch.allclose(v, v[:, :, :1].expand_as(v), atol=1e-5)  # the same crop on every frame
    assert not torch.allclose(v1, v2)
    again = m.simclr_views(static, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], v1) and torch.equal(again[1], v2)


def test_temporal_crop_slows_motion_but_keeps_its_direction():
    m = video_modality(frames=8, frame_size=32, augment={"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0),
                                                         "max_rotation_deg": 0, "temporal_scale": (0.5, 0.5)})
    clip = torch.zeros(1, 1, 8, 32, 32)
    for k in range(8):
        clip[0, 0, k, :, 2 + 3 * k] = 1.0  # a vertical line moving right 3 px a frame
    view = m._resample(clip, torch.Generator().manual_seed(0), (1.0, 1.0), (1.0, 1.0), 0.0, False, (0.5, 0.5))
    centres = (view[0, 0, :, 16] * torch.arange(32.0)).sum(-1) / view[0, 0, :, 16].sum(-1)
    steps = centres.diff()
    assert torch.allclose(steps, torch.full_like(steps, 1.5 * 7 / 8), atol=0.2)  # half the window: half the speed


def test_mae_forward_backward_through_the_shared_encoder():
    m = video_modality(frames=8, frame_size=32)
    encoder = build_encoder(m, EncoderParams(embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0))
    mae = MAE(encoder, m, decoder_dim=16, decoder_depth=1, decoder_heads=2)
    x = m.to_input(torch.randint(0, 256, (4, 1, 8, 32, 32), dtype=torch.uint8))
    loss, pred, mask = mae.reconstruct(x, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and pred.shape == (4, 64, m.target_dim)
    assert encoder.token_embedding[1].proj.weight.grad.abs().sum() > 0
    figure = m.reconstruction_figure(x, pred.detach(), mask, normalized=True)
    assert figure.dtype == np.uint8 and figure.shape == (4 * 3 * 32, 8 * 32)


# ---- embedded data, deployment, params -------------------------------------------------------------------

def test_embedded_motion_clips_are_balanced_real_and_deterministic():
    fmt = ClipFormat(frames=8, fps=10.0, size=32, channels=1)
    x, y, labels = embedded_motion_clips(16, fmt, seed=3)
    assert x.shape == (16, 1, 8, 32, 32) and x.dtype == np.uint8
    assert labels == list(MOTIONS) and np.bincount(y).tolist() == [2] * 8
    assert x.std() > 20 and np.abs(np.diff(x.astype(float), axis=2)).mean() > 2  # textured, and moving
    again, y_again, _ = embedded_motion_clips(16, fmt, seed=3)
    assert np.array_equal(x, again) and np.array_equal(y, y_again)


def test_app_preprocessing_equals_to_input_of_the_stored_clip(tmp_path):
    make_class_folders(tmp_path, per_class=3)
    m = video_modality(source="folder", path=str(tmp_path), channels=3)
    data = m.load_raw()
    spec = m.input_spec()
    assert spec == {"name": "video", "shape": [-1, 3, 4, 16, 16], "dtype": "float32"}
    app_spec = InputSpec(modality="video", shape=(None, 3, 4, 16, 16), dtype=np.dtype("float32"),
                         preprocessing=m.preprocessing())
    split = data.splits["test"]
    stored = m.to_input(torch.from_numpy(split.x[:1])).numpy()
    class_folder = tmp_path / split.labels[split.y[0]]
    assert any(np.array_equal(preprocess(path, app_spec), stored) for path in class_folder.iterdir())
    frames = split.x[0].transpose(1, 2, 3, 0)  # (T, H, W, C) uint8, already sampled
    assert np.array_equal(preprocess(frames, app_spec), stored)


@pytest.mark.parametrize("bad, message", [
    ({"frames": 5}, "frames .5. must be a multiple of tubelet_frames .2."),
    ({"frame_size": 20}, "frame_size .20. must be a multiple of patch_size .8."),
    ({"source": "folder"}, "source 'folder' needs 'path'"),
    ({"augment": {"temporal_scale": (0.5, 1.5)}}, "at most 1"),
    ({"source": "youtube"}, "modalities.video.source"),
])
def test_bad_params_are_clear_errors(bad, message):
    with pytest.raises(ParamsError, match=message):
        video_params(**bad)
