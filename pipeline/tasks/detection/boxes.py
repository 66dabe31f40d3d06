"""Boxes on the patch grid: formats, the per-cell box parametrisation, target assignment (NMS runs
after the model, in numpy: devices/postprocess/detection.py).

Boxes are xyxy in input pixels. A cell of the grid (row-major, like the encoder's tokens)
predicts at most one box, the one whose centre falls in it:

    centre = (cell + offset) * stride      offset in [0, 1), predicted through a sigmoid
    size   = exp(log_size) * stride        log_size predicted directly

so `encode_boxes` and `decode_boxes` are exact inverses, and decoding is a handful of
elementwise ops that export to any ONNX runtime.
"""
from __future__ import annotations

import torch
from torchvision.ops import box_convert

from modalities.splits import CLASS_PADDING  # class id of a padding row in the (N, max_boxes) arrays


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(boxes, "xyxy", "cxcywh")


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(boxes, "cxcywh", "xyxy")


def cell_centres(grid_size: int, device=None) -> torch.Tensor:
    """(G*G, 2) integer (col, row) of every cell, row-major like the patch tokens."""
    rows, cols = torch.meshgrid(torch.arange(grid_size, device=device), torch.arange(grid_size, device=device),
                                indexing="ij")
    return torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=-1).float()


def centre_cell(boxes: torch.Tensor, grid_size: int, stride: float) -> torch.Tensor:
    """(..., 4) xyxy -> (...) row-major index of the cell holding each box's centre."""
    centre = xyxy_to_cxcywh(boxes)[..., :2] / stride
    col_row = centre.floor().long().clamp(0, grid_size - 1)
    return col_row[..., 1] * grid_size + col_row[..., 0]


def encode_boxes(boxes: torch.Tensor, cells: torch.Tensor, stride: float) -> torch.Tensor:
    """xyxy pixels (..., 4) + their (col, row) cells (..., 2) -> (offset_x, offset_y, log_w, log_h)."""
    cxcywh = xyxy_to_cxcywh(boxes)
    offset = cxcywh[..., :2] / stride - cells
    log_size = torch.log(cxcywh[..., 2:].clamp(min=1e-3) / stride)
    return torch.cat([offset, log_size], dim=-1)


def decode_boxes(params: torch.Tensor, cells: torch.Tensor, stride: float) -> torch.Tensor:
    """Inverse of `encode_boxes`: (offset_x, offset_y, log_w, log_h) (..., 4) -> xyxy pixels."""
    centre = (cells + params[..., :2]) * stride
    size = torch.exp(params[..., 2:]) * stride
    return cxcywh_to_xyxy(torch.cat([centre, size], dim=-1))


def assign_targets(boxes: torch.Tensor, classes: torch.Tensor, grid_size: int, stride: float):
    """Ground truth (B, M, 4) xyxy + (B, M) class ids (-1 = padding) -> per-cell targets.

    Returns (classes (B, G*G) long, -1 where no object; box params (B, G*G, 4), valid where class >= 0).
    When two boxes share a centre cell the smaller one wins: the larger one is easier to recover
    from a neighbouring cell's prediction, and the small one would otherwise never be learnt.
    """
    b = classes.shape[0]
    n = grid_size * grid_size
    cells = centre_cell(boxes, grid_size, stride)
    params = encode_boxes(boxes, cell_centres(grid_size, boxes.device)[cells], stride)
    valid = classes >= 0
    slot = (torch.arange(b, device=boxes.device)[:, None] * n + cells)[valid]
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))[valid]
    by_area = torch.argsort(area, stable=True)
    order = by_area[torch.argsort(slot[by_area], stable=True)]  # grouped by slot, smallest box first
    first = torch.ones_like(order, dtype=torch.bool)
    first[1:] = slot[order][1:] != slot[order][:-1]
    winners = order[first]
    cell_classes = torch.full((b * n,), CLASS_PADDING, dtype=torch.long, device=boxes.device)
    cell_params = torch.zeros((b * n, 4), dtype=boxes.dtype, device=boxes.device)
    cell_classes[slot[winners]] = classes[valid][winners].long()
    cell_params[slot[winners]] = params[valid][winners]
    return cell_classes.view(b, n), cell_params.view(b, n, 4)
