"""reconstruct: a PNG grid of originals / masked inputs / MAE reconstructions on test samples.

The DVC `probe` stage draws it (`write_figure`) after probing, in the same process; this module can also
run alone: `python -m pipeline.report.reconstructions --modality image`."""
from __future__ import annotations

import torch
from PIL import Image

from modalities import get_modality
from pipeline.config import paths
from pipeline.training.checkpoint import load_weights
from devices.io import atomic_path
from pipeline.models.loading import fresh_encoder
from pipeline.models.methods import build_objective
from pipeline.stages.common import start


FIGURE_SAMPLES = 8  # test samples shown, one per row


def write_figure(modality, params):
    """reports/figures/<modality>-mae-reconstruction.png from the modality's pretrained MAE."""
    mae = build_objective("mae", fresh_encoder(modality, params), modality, params)
    load_weights(mae, paths.pretrain_dir(modality.name, "mae") / "objective.safetensors")
    test = modality.load_split(paths.data_dir(modality.name), "test")
    x = modality.to_input(torch.from_numpy(test.x[:FIGURE_SAMPLES]))
    with torch.no_grad():
        _, pred, mask = mae.eval().reconstruct(x, torch.Generator().manual_seed(params.seed))
    grid = modality.reconstruction_figure(x, pred, mask, params.mae.norm_pix_loss)
    scale = max(1, 256 // grid.shape[1] * 2)  # small images are enlarged so the grid is readable
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    target = paths.REPORTS / "figures" / f"{modality.name}-mae-reconstruction.png"
    with atomic_path(target) as tmp:
        img.save(tmp, format="PNG")
    print(f"reconstruct {modality.name}: wrote {target}")
    return target


def main() -> None:
    args, params = start(__doc__, "modality")
    write_figure(get_modality(args.modality, params), params)


if __name__ == "__main__":
    main()
