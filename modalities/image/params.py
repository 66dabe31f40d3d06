"""An image modality section (`kind: image`) in params.yaml: `modalities.image`, or any name with kind image."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from modalities.params import ModalityBase, Strict


class ImageAugment(Strict):
    """SimCLR views for images (all ranges are sampled uniformly per view)."""

    crop_scale: tuple[float, float] = (0.35, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.33)
    max_rotation_deg: float = Field(15.0, ge=0, le=180)
    hflip: bool = False  # digits and text are not mirror-symmetric
    brightness: float = Field(0.4, ge=0, le=1)
    contrast: float = Field(0.4, ge=0, le=1)
    blur_prob: float = Field(0.5, ge=0, le=1)
    noise_std: float = Field(0.05, ge=0, le=1)
    invert_prob: float = Field(0.0, ge=0, le=1)


class RoadScenes(Strict):
    """The embedded detection data (source road_scenes): street frames with pasted, labelled objects."""

    count: int = Field(1500, ge=1, le=1_000_000)  # scenes in all, before the split
    max_objects: int = Field(4, ge=1, le=64)  # objects per scene: 1..max_objects


class ImageParams(ModalityBase):
    EMBEDDED_SOURCES: ClassVar[frozenset[str]] = frozenset({"embedded", "road_scenes"})
    DETECTION_SOURCES: ClassVar[frozenset[str]] = frozenset({"road_scenes", "kitti", "coco"})

    kind: Literal["image"] = "image"
    # embedded: MNIST digits; folder: root/<class>/ images; cifar10: the python batches;
    # detection data: road_scenes (embedded), kitti (path = KITTI root), coco (path = image folder + annotations)
    source: Literal["embedded", "folder", "cifar10", "road_scenes", "kitti", "coco"] = "embedded"
    annotations: str | None = None  # coco: the COCO detection JSON file
    labels: list[str] | None = Field(None, min_length=1)  # kitti: which object types, in class-id order (null = all)
    scenes: RoadScenes = RoadScenes()
    image_size: int = Field(28, ge=8, le=1024)
    channels: Literal[1, 3] = 1
    patch_size: int = Field(4, ge=1, le=64)
    augment: ImageAugment = ImageAugment()

    @field_validator("labels")
    @classmethod
    def _distinct(cls, value):
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"labels must be distinct, got {value}")
        return value

    @model_validator(mode="after")
    def _check(self) -> "ImageParams":
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        if self.source == "coco" and not self.annotations:
            raise ValueError("source 'coco' needs 'annotations' (the COCO JSON file; 'path' is the image folder)")
        if self.source != "coco" and self.annotations:
            raise ValueError(f"'annotations' is only for source 'coco', not '{self.source}'")
        if self.source != "kitti" and self.labels is not None:
            raise ValueError(f"'labels' (the KITTI object types to keep) is only for source 'kitti', not '{self.source}'")
        return self
