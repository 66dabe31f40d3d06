"""Image corruptions on uint8 (N, C, H, W) batches, C = 1 or 3, after ImageNet-C (Hendrycks & Dietterich, 2019).

Noise, contrast and brightness use ImageNet-C's constants, which do not depend on the image size. The blur
sigma is set for a 32 px image (CIFAR-10-C's 0.4-1.0, stretched since its severity 1 is barely visible) and
scaled by side / 32, so a 28 px digit and a 64 px road scene are blurred alike. JPEG quality is
ImageNet-C's with milder first steps, since an 8x8 block is a large part of a 28 px image. Occlusion has no
ImageNet-C counterpart: its rectangles cover about 6, 12, 20, 29 and 41% of the image (overlaps counted
once). Each table holds the severity 1..5 values in order.
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from modalities.corruptions import Corruption, by_name

NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)  # gaussian noise std, pixels in [0, 1]
BLUR_SIGMA_32PX = (0.5, 0.75, 1.0, 1.25, 1.5)  # gaussian blur sigma in pixels of a 32 px image
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)  # factor towards the image's mean grey
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to the HSV value, hue and saturation kept
JPEG_QUALITY = (40, 25, 15, 10, 7)  # Pillow quality
OCCLUSION = ((1, 0.06), (2, 0.065), (2, 0.11), (3, 0.115), (4, 0.14))  # (rectangles, area fraction of each)


def check_images(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image batch: got {x.dtype} {x.shape}, expected uint8 (N, C, H, W) with C = 1 or 3")
    return x


def _float(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)


def _uint8(t: torch.Tensor) -> np.ndarray:
    return t.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def gaussian_noise(x, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Independent gaussian noise on every pixel and channel."""
    x = check_images(x)
    noise = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(NOISE_STD[severity - 1] * 255.0)
    return np.rint(x + noise).clip(0, 255).astype(np.uint8)


def blur(x, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Gaussian blur, kernel +-3 sigma (at most the image side), reflected borders."""
    x = check_images(x)
    sigma = BLUR_SIGMA_32PX[severity - 1] * min(x.shape[-2:]) / 32
    size = min(2 * int(np.ceil(3 * sigma)) + 1, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)
    return _uint8(TF.gaussian_blur(_float(x), [size, size], [sigma, sigma]))


def contrast(x, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Each image blended towards its mean grey level."""
    return _uint8(TF.adjust_contrast(_float(check_images(x)), CONTRAST[severity - 1]))


def brightness(x, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """ImageNet-C brightness: the HSV value V = max over channels raised by c (clipped at 1), hue and
    saturation kept, which is every channel scaled by V' / V (grey V' where V = 0). torchvision's
    adjust_brightness only scales, which leaves black (a digit's whole background) black."""
    t = _float(check_images(x))
    value = t.amax(dim=1, keepdim=True)
    raised = (value + BRIGHTNESS[severity - 1]).clamp_(max=1.0)
    return _uint8(torch.where(value > 0, t * raised / value.clamp(min=1e-12), raised))


def jpeg(x, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """JPEG round trip through Pillow, one image at a time (greyscale stays greyscale)."""
    x = check_images(x)
    quality, out = JPEG_QUALITY[severity - 1], np.empty_like(x)
    for i, image in enumerate(x):
        pil = Image.fromarray(image[0]) if x.shape[1] == 1 else Image.fromarray(image.transpose(1, 2, 0))
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(buffer))
        out[i] = decoded[None] if x.shape[1] == 1 else decoded.transpose(2, 0, 1)
    return out


def occlusion(x, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Rectangles of random aspect (1:2 to 2:1), position and flat colour pasted over each image."""
    x = check_images(x)
    (n, c, h, w), (count, area) = x.shape, OCCLUSION[severity - 1]
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0), (n, count)))
    rh = np.clip(np.rint(h * np.sqrt(area / aspect)), 1, h).astype(int)
    rw = np.clip(np.rint(w * np.sqrt(area * aspect)), 1, w).astype(int)
    top = (rng.random((n, count)) * (h - rh + 1)).astype(int)
    left = (rng.random((n, count)) * (w - rw + 1)).astype(int)
    colour = rng.integers(0, 256, (n, count, c), dtype=np.uint8)
    rows, cols = np.arange(h), np.arange(w)
    out = x.copy()
    for r in range(count):  # later rectangles cover earlier ones
        inside = ((rows >= top[:, r, None]) & (rows < (top + rh)[:, r, None]))[:, :, None] & \
                 ((cols >= left[:, r, None]) & (cols < (left + rw)[:, r, None]))[:, None, :]
        out = np.where(inside[:, None], colour[:, r, :, None, None], out)
    return out


def corruptions(params=None) -> dict[str, Corruption]:
    """The image corruptions by name; they read channels and size from the batch, not from params."""
    return by_name(
        Corruption("gaussian_noise", gaussian_noise, f"gaussian noise, std {NOISE_STD} of the pixel range"),
        Corruption("blur", blur, f"gaussian blur, sigma {BLUR_SIGMA_32PX} px at 32 px, scaled with the side"),
        Corruption("contrast", contrast, f"contrast reduced to {CONTRAST} of the original"),
        Corruption("brightness", brightness, f"HSV value raised by {BRIGHTNESS}"),
        Corruption("jpeg", jpeg, f"JPEG compression at quality {JPEG_QUALITY}"),
        Corruption("occlusion", occlusion, "random flat-coloured rectangles (count, area fraction each): "
                                           f"{OCCLUSION}"),
    )
