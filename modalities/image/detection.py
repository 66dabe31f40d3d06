"""Object-detection datasets as uint8 images + padded box arrays, and readers for KITTI 2D and COCO JSON.

A `DetectionSet` holds
    images  uint8 (N, 3, S, S)
    boxes   float32 (N, max_boxes, 4) xyxy in pixels of the S x S image
    classes int64 (N, max_boxes), -1 on padding rows
    labels  the class names (class id = index)
plain arrays, so a set saves to .npz and loads without pickle.

Readers resize every image to S x S (what the patch encoder takes) and scale the boxes per axis
with it. A file that cannot be used (undecodable image, missing image, malformed label line, box
outside its image) raises CorruptFileError naming it, or with on_corrupt="skip" is left out and its
path appended to `skipped`. Problems of the whole dataset (no classes, no images) always raise.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modalities.image.readers import read_image
from modalities.splits import CLASS_PADDING, CorruptFileError

BOX_TOLERANCE_PX = 1.0  # annotation tools round box corners; a box this far outside its image is still valid
KITTI_IGNORED_TYPES = {"DontCare"}
KITTI_FIELDS = 15  # type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y (+ score in results)


@dataclass
class DetectionSet:
    images: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    labels: list[str]

    def __post_init__(self):
        n = len(self.images)
        if len(self.boxes) != n or len(self.classes) != n or self.boxes.shape[:2] != self.classes.shape:
            raise ValueError(f"detection set: {n} images, boxes {self.boxes.shape}, classes {self.classes.shape}")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> "DetectionSet":
        return DetectionSet(self.images[index], self.boxes[index], self.classes[index], self.labels)


def largest_box_class(boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(N, M, 4), (N, M) -> (N,) the class of each image's largest box (-1 for an image without boxes)."""
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    area = np.where(classes != CLASS_PADDING, area, -np.inf)
    picked = classes[np.arange(len(classes)), area.argmax(axis=1)] if classes.size else np.zeros(0, np.int64)
    return np.where(np.isfinite(area.max(axis=1, initial=-np.inf)), picked, CLASS_PADDING).astype(np.int64)


def pack_boxes(boxes: list[np.ndarray], classes: list[np.ndarray], max_boxes: int | None = None):
    """Per-image (k, 4) boxes and (k,) class ids -> padded (N, M, 4) float32 and (N, M) int64 (-1 padding).

    M is max_boxes, or the largest k when None; images with more boxes keep their first M.
    """
    m = max_boxes if max_boxes is not None else max([len(c) for c in classes], default=0)
    packed_boxes = np.zeros((len(boxes), max(m, 1), 4), dtype=np.float32)
    packed_classes = np.full((len(boxes), max(m, 1)), CLASS_PADDING, dtype=np.int64)
    for i, (b, c) in enumerate(zip(boxes, classes)):
        k = min(len(c), m)
        packed_boxes[i, :k] = np.asarray(b, dtype=np.float32).reshape(-1, 4)[:k]
        packed_classes[i, :k] = c[:k]
    return packed_boxes, packed_classes


def save_npz(dataset: DetectionSet, path: str | Path) -> None:
    np.savez(path, images=dataset.images, boxes=dataset.boxes, classes=dataset.classes,
             labels=np.asarray(dataset.labels, dtype=str))


def load_npz(path: str | Path) -> DetectionSet:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detection set not found")
    with np.load(path, allow_pickle=False) as a:
        return DetectionSet(a["images"], a["boxes"], a["classes"], [str(s) for s in a["labels"]])


def check_box(box: np.ndarray, width: int, height: int, where: str) -> np.ndarray:
    """A pixel xyxy box inside its width x height image (within BOX_TOLERANCE_PX), clipped to it."""
    x1, y1, x2, y2 = box
    t = BOX_TOLERANCE_PX
    if not (x2 > x1 and y2 > y1):
        raise CorruptFileError(f"{where}: box {box.tolist()} is empty (needs x2 > x1 and y2 > y1)")
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        raise CorruptFileError(f"{where}: box {box.tolist()} lies outside the {width}x{height} image")
    return np.clip(box, 0, [width, height, width, height]).astype(np.float32)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise CorruptFileError(f"{path}: cannot decode image ({exc})") from exc


def _load_sample(image_path: Path, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode + resize to size x size; boxes (already checked against the original size) scaled along."""
    image = read_image(image_path, size, 3)  # first: it names the file of an unreadable image or a bomb
    width, height = _image_size(image_path)
    scale = np.array([size / width, size / height] * 2, dtype=np.float32)
    return image, boxes.reshape(-1, 4) * scale


def _collect(samples, size: int, labels: list[str], on_corrupt: str, skipped: list[str], source: str,
             max_boxes: int | None) -> DetectionSet:
    """samples: iterable of (path that names the sample, callable -> (image path, boxes, classes))."""
    if not labels:
        raise ValueError(f"{source}: the class list is empty (no annotated object classes)")
    images, all_boxes, all_classes = [], [], []
    for name, parse in samples:
        try:
            image_path, boxes, classes = parse()
            image, boxes = _load_sample(image_path, boxes, size)
        except CorruptFileError:
            if on_corrupt != "skip":
                raise
            skipped.append(str(name))
            continue
        images.append(image)
        all_boxes.append(boxes)
        all_classes.append(classes)
    if not images:
        raise ValueError(f"{source}: no usable annotated images")
    packed_boxes, packed_classes = pack_boxes(all_boxes, all_classes, max_boxes)
    return DetectionSet(np.stack(images), packed_boxes, packed_classes, labels)


# ---- KITTI 2D object detection ---------------------------------------------------------------------

def _kitti_root(root: Path) -> Path:
    for candidate in (root, root / "training"):
        if (candidate / "label_2").is_dir() and (candidate / "image_2").is_dir():
            return candidate
    raise FileNotFoundError(f"{root}: expected KITTI folders image_2/ and label_2/ (or training/image_2, training/label_2)")


def _kitti_objects(label_path: Path) -> list[tuple[str, np.ndarray]]:
    objects = []
    for number, line in enumerate(label_path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (KITTI_FIELDS, KITTI_FIELDS + 1):
            raise CorruptFileError(f"{label_path}:{number}: expected {KITTI_FIELDS} fields, got {len(fields)}")
        try:
            box = np.array([float(v) for v in fields[4:8]], dtype=np.float32)
        except ValueError as exc:
            raise CorruptFileError(f"{label_path}:{number}: box is not numeric ({exc})") from exc
        if fields[0] not in KITTI_IGNORED_TYPES:
            objects.append((fields[0], box))
    return objects


def _kitti_sample(label_path: Path, image_dir: Path, labels: list[str]):
    image_path = next((p for p in sorted(image_dir.glob(label_path.stem + ".*")) if p.is_file()), None)
    if image_path is None:
        raise CorruptFileError(f"{label_path}: annotation points at image {image_dir / label_path.stem}.png, "
                               "which does not exist")
    width, height = _image_size(image_path)
    objects = [(t, b) for t, b in _kitti_objects(label_path) if t in labels]
    boxes = [check_box(b, width, height, f"{label_path} ({t})") for t, b in objects]
    classes = np.array([labels.index(t) for t, _ in objects], dtype=np.int64)
    return image_path, np.array(boxes, dtype=np.float32).reshape(-1, 4), classes


def _kitti_types(label_paths: list[Path], on_corrupt: str, skipped: list[str]) -> list[str]:
    types = set()
    for path in label_paths:
        try:
            types |= {t for t, _ in _kitti_objects(path)}
        except CorruptFileError:
            if on_corrupt != "skip":
                raise
    return sorted(types)


def read_kitti(root: str | Path, image_size: int, labels: list[str] | None, on_corrupt: str,
               skipped: list[str], max_boxes: int | None = None) -> DetectionSet:
    """KITTI 2D: root/image_2/<id>.png + root/label_2/<id>.txt (or under root/training/).

    labels picks and orders the classes (KITTI types, e.g. ["Car", "Pedestrian", "Cyclist"]); objects of
    other types are dropped. None: every type found, sorted ("DontCare" regions are always dropped).
    """
    root = _kitti_root(Path(root))
    label_paths = sorted((root / "label_2").glob("*.txt"))
    if not label_paths:
        raise FileNotFoundError(f"{root / 'label_2'}: no KITTI label files (*.txt)")
    if labels is None:
        labels = _kitti_types(label_paths, on_corrupt, skipped)
    samples = ((p, lambda p=p: _kitti_sample(p, root / "image_2", labels)) for p in label_paths)
    return _collect(samples, image_size, list(labels), on_corrupt, skipped, str(root), max_boxes)


# ---- COCO JSON ---------------------------------------------------------------------------------------

def _load_coco_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: COCO annotation file not found")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path}: not valid JSON ({exc})") from exc
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise CorruptFileError(f"{path}: COCO file needs lists {missing}")
    return data


def _coco_sample(image: dict, annotations: list[dict], image_dir: Path, category_index: dict[int, int],
                 json_path: Path):
    image_path = image_dir / str(image["file_name"])
    if not image_path.is_file():
        raise CorruptFileError(f"{json_path}: image id {image['id']} points at {image_path}, which does not exist")
    width, height = _image_size(image_path)
    boxes, classes = [], []
    for ann in annotations:
        if ann.get("iscrowd", 0):  # crowd regions are "ignore" areas in COCO evaluation, not objects
            continue
        if ann.get("category_id") not in category_index:
            raise CorruptFileError(f"{json_path}: annotation {ann.get('id')} has unknown category_id "
                                   f"{ann.get('category_id')!r}")
        x, y, w, h = (float(v) for v in ann["bbox"])
        boxes.append(check_box(np.array([x, y, x + w, y + h]), width, height,
                               f"{json_path}: annotation {ann.get('id')} of {image_path.name}"))
        classes.append(category_index[ann["category_id"]])
    return image_path, np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(classes, dtype=np.int64)


def read_coco(annotation_path: str | Path, image_dir: str | Path, image_size: int, on_corrupt: str,
              skipped: list[str], max_boxes: int | None = None) -> DetectionSet:
    """COCO detection JSON (images, annotations with bbox [x, y, w, h], categories) + its image folder.

    Class ids follow the categories' order in the file; crowd annotations are dropped. An annotation
    whose image_id is not among the images is an error naming the file (or, with skip, counted).
    """
    json_path, image_dir = Path(annotation_path), Path(image_dir)
    data = _load_coco_json(json_path)
    categories = data["categories"]
    labels = [str(c["name"]) for c in categories]
    category_index = {c["id"]: i for i, c in enumerate(categories)}
    images = {img["id"]: img for img in data["images"]}
    per_image: dict = {image_id: [] for image_id in images}
    for ann in data["annotations"]:
        if ann.get("image_id") not in images:
            error = CorruptFileError(f"{json_path}: annotation {ann.get('id')} points at image id "
                                     f"{ann.get('image_id')!r}, which is not in 'images'")
            if on_corrupt != "skip":
                raise error
            skipped.append(f"{json_path}#annotation={ann.get('id')}")
            continue
        per_image[ann["image_id"]].append(ann)
    samples = ((image_dir / str(img["file_name"]),
                lambda img=img: _coco_sample(img, per_image[img["id"]], image_dir, category_index, json_path))
               for img in images.values())
    return _collect(samples, image_size, labels, on_corrupt, skipped, str(json_path), max_boxes)
