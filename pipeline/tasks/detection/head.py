"""Dense object detection on the encoder's patch grid: head, deployable detector, loss, post-processing.

Every patch token predicts one candidate: an objectness logit, class logits and a box (see
pipeline/boxes.py for the parametrisation). The deployable `Detector` maps an image to
    boxes  (B, G*G, 4)  xyxy in input pixels
    scores (B, G*G, C)  objectness x class probability
and NMS runs after the model (`devices.postprocess.detection.postprocess`, numpy, in evaluation and apps
alike), not inside the ONNX graph, because:
  * fixed-shape outputs (batch axis only dynamic) are what export_onnx checks, what INT8 calibration
    and static-shape targets need, and what every device profile runs; ONNX NonMaxSuppression returns
    a data-dependent number of rows and is missing from some targets (QNN's op list lacks it);
  * thresholds stay app settings (stored as defaults in the metadata), not baked into the file;
  * NMS over at most G*G candidates costs microseconds in numpy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from pipeline.tasks.detection import boxes as box_ops
from pipeline.models.encoder import Encoder

OUTPUT_NAMES = ("boxes", "scores")
BOX_PARAMS = 4  # offset_x, offset_y, log_w, log_h


class DetectionHead(nn.Module):
    """Per token: LayerNorm + MLP -> [objectness logit, C class logits, 4 box params]."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, 1 + num_classes + BOX_PARAMS))
        nn.init.trunc_normal_(self.mlp[-1].weight, std=0.02)
        nn.init.zeros_(self.mlp[-1].bias)
        # start with objectness ~1% so the many empty cells do not swamp the first steps (RetinaNet's prior)
        nn.init.constant_(self.mlp[-1].bias[0], -4.6)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(tokens))


class Detector(nn.Module):
    """Deployable: image (B, C, H, W) in [0, 1] -> (boxes (B, N, 4) xyxy pixels, scores (B, N, classes))."""

    output_names = OUTPUT_NAMES

    def __init__(self, encoder: Encoder, num_classes: int, grid_size: int, stride: float):
        super().__init__()
        self.encoder = encoder
        self.num_classes = num_classes
        self.grid_size = grid_size
        self.stride = float(stride)
        self.head = DetectionHead(encoder.embed_dim, num_classes)
        self.register_buffer("cells", box_ops.cell_centres(grid_size), persistent=False)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Per-cell head outputs (B, G*G, 1 + classes + 4), what the loss takes."""
        return self.head(self.encoder(x))

    def decode(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        objectness, class_logits, params = split_raw(raw, self.num_classes)
        boxes = box_ops.decode_boxes(box_params(params), self.cells, self.stride)
        scores = torch.sigmoid(objectness) * torch.softmax(class_logits, dim=-1)
        return boxes, scores

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.raw(x))


def build_detector(encoder: Encoder, modality, num_classes: int) -> Detector:
    """A detector on `encoder` for an image modality (its patch grid sets the cells)."""
    return Detector(encoder, num_classes, modality.grid_size, modality.params.patch_size)


def split_raw(raw: torch.Tensor, num_classes: int):
    """(…, 1 + C + 4) -> objectness logit (…, 1), class logits (…, C), raw box params (…, 4)."""
    return raw[..., :1], raw[..., 1:1 + num_classes], raw[..., 1 + num_classes:]


def box_params(raw_params: torch.Tensor) -> torch.Tensor:
    """Raw head outputs -> (offset in [0, 1], log size), the form boxes.encode_boxes produces."""
    return torch.cat([torch.sigmoid(raw_params[..., :2]), raw_params[..., 2:]], dim=-1)


class DetectionLoss(nn.Module):
    """Focal loss on objectness (all cells, normalised by the number of objects), cross entropy on the
    class and L1 on box params + GIoU on decoded boxes (cells that hold an object's centre)."""

    def __init__(self, num_classes: int, grid_size: int, stride: float, giou_weight: float = 2.0):
        super().__init__()
        self.num_classes = num_classes
        self.grid_size = grid_size
        self.stride = float(stride)
        self.giou_weight = giou_weight
        self.register_buffer("cells", box_ops.cell_centres(grid_size), persistent=False)

    def forward(self, raw: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor) -> dict[str, torch.Tensor]:
        """raw (B, N, 1 + C + 4); ground truth boxes (B, M, 4) xyxy pixels, classes (B, M), -1 = padding."""
        raw = raw.float()
        cell_classes, cell_params = box_ops.assign_targets(boxes.float(), classes, self.grid_size, self.stride)
        positive = cell_classes >= 0
        num_positive = positive.sum().clamp(min=1)
        objectness, class_logits, params = split_raw(raw, self.num_classes)
        parts = {"objectness": sigmoid_focal_loss(objectness[..., 0], positive.float(), reduction="sum") / num_positive}
        if positive.any():
            predicted = box_params(params[positive])
            cells = self.cells.expand(raw.shape[0], -1, -1)[positive]
            parts["classification"] = F.cross_entropy(class_logits[positive], cell_classes[positive])
            parts["box_l1"] = F.l1_loss(predicted, cell_params[positive])
            parts["box_giou"] = self.giou_weight * generalized_box_iou_loss(
                box_ops.decode_boxes(predicted, cells, self.stride),
                box_ops.decode_boxes(cell_params[positive], cells, self.stride), reduction="mean")
        parts["total"] = sum(parts.values())
        return parts


def pack_targets(boxes: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(N, M, 4) boxes + (N, M) class ids -> one (N, M, 5) float tensor, what pipeline.training.loop indexes as `y`."""
    return torch.cat([torch.as_tensor(boxes).float(), torch.as_tensor(classes).float().unsqueeze(-1)], dim=-1)


def unpack_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return targets[..., :4], targets[..., 4].round().long()


def hflip_with_boxes(x: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor, flip: torch.Tensor):
    """Mirror the images where flip (B,) is True, and their boxes with them (padding rows untouched)."""
    width = x.shape[-1]
    mirrored = torch.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], dim=-1)
    rows = flip[:, None] & (classes >= 0)
    return (torch.where(flip[:, None, None, None], x.flip(-1), x),
            torch.where(rows[..., None], mirrored, boxes))


class DetectionObjective(nn.Module):
    """Fine-tuning loss for pipeline.training.loop: forward(x, targets (B, M, 5), generator) -> scalar loss.

    Augmentation: random horizontal flip (road scenes are mirror-symmetric; boxes flip along)."""

    def __init__(self, detector: Detector, hflip: bool = True):
        super().__init__()
        self.detector = detector
        self.hflip = hflip
        self.loss = DetectionLoss(detector.num_classes, detector.grid_size, detector.stride)

    def forward(self, x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.losses(x, targets, generator)["total"]

    def losses(self, x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        boxes, classes = unpack_targets(targets)
        if self.hflip:
            flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
            x, boxes = hflip_with_boxes(x, boxes, classes, flip)
        return self.loss(self.detector.raw(x), boxes, classes)


def postprocess_metadata(score_threshold: float, iou_threshold: float, max_detections: int) -> dict:
    """What an app needs to turn the exported outputs into detections (goes into the model metadata)."""
    return {
        "task_kind": "detection",
        "output": "boxes_scores",
        "outputs": {"boxes": "(N, cells, 4) xyxy in model-input pixels",
                    "scores": "(N, cells, classes) objectness x class probability"},
        # keyword arguments of devices.postprocess.detection.postprocess (each cell's best class, class-aware NMS)
        "postprocess": {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
                        "max_detections": max_detections},
    }
