"""Named, seeded, deterministic corruptions of what an app receives, at severities 1-5 (0 = clean).

A corruption works on a batch of raw inputs as an app gets them, before any front end:
image uint8 (N, C, H, W); video uint8 (N, C, T, H, W); audio float32 waveforms (N, samples) in [-1, 1];
text a list of N strings. It returns the same type, shape and dtype. Each modality kind lists its
own in `modalities/<kind>/corruptions.py`; the robustness stage applies every one at every severity.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Corruption:
    """`apply(raw, severity, rng)` corrupts a batch at severity 1..5 with the given generator."""

    name: str
    apply: Callable[[Any, int, np.random.Generator], Any]
    description: str = ""

    def __call__(self, raw: Any, severity: int, seed: int = 0) -> Any:
        """The corrupted batch; severity 0 gives a copy of raw. The same seed gives the same output."""
        if severity not in (0, *SEVERITIES):
            raise ValueError(f"corruption '{self.name}': severity {severity!r}, expected 0 (clean) or one of {SEVERITIES}")
        if severity == 0:
            return list(raw) if isinstance(raw, list) else np.array(raw, copy=True)
        rng = np.random.default_rng([seed, severity, zlib.crc32(self.name.encode())])
        return self.apply(raw, severity, rng)


def by_name(*corruptions: Corruption) -> dict[str, Corruption]:
    """{name: corruption}, refusing two with one name."""
    table: dict[str, Corruption] = {}
    for corruption in corruptions:
        if corruption.name in table:
            raise ValueError(f"two corruptions are named '{corruption.name}'")
        table[corruption.name] = corruption
    return table
