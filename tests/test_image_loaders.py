import pickle

import numpy as np
import pytest
from PIL import Image

from modalities import get_modality
from modalities.image.readers import read_cifar10
from modalities.splits import CorruptFileError
from pipeline.config.params import parse


def image_params(**image):
    return parse({"modalities": {"image": image}, "tasks": {"t": {"modality": "image"}}})


def make_folder_tree(root, classes=("cat", "dog"), per_class=10, corrupt=None):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    if corrupt:
        (root / classes[0] / corrupt).write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")


def test_folder_tree_loads_and_splits(tmp_path):
    make_folder_tree(tmp_path)
    m = get_modality("image", image_params(source="folder", path=str(tmp_path), image_size=16, patch_size=4,
                                           channels=3, split={"val": 0.2, "test": 0.2}))
    data = m.load_raw()
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sum(sizes.values()) == 20 and min(sizes.values()) > 0
    assert data.splits["train"].x.shape[1:] == (3, 16, 16) and data.splits["train"].x.dtype == np.uint8
    assert data.splits["train"].labels == ["cat", "dog"]


def test_corrupt_image_is_an_error_naming_the_file(tmp_path):
    make_folder_tree(tmp_path, corrupt="broken.png")
    m = get_modality("image", image_params(source="folder", path=str(tmp_path), image_size=16, patch_size=4))
    with pytest.raises(CorruptFileError, match="broken.png"):
        m.load_raw()


def test_corrupt_image_skipped_and_counted_when_asked(tmp_path):
    make_folder_tree(tmp_path, corrupt="broken.png")
    m = get_modality("image", image_params(source="folder", path=str(tmp_path), image_size=16, patch_size=4,
                                           on_corrupt="skip"))
    data = m.load_raw()
    assert [p.endswith("broken.png") for p in data.skipped] == [True]
    assert sum(len(s) for s in data.splits.values()) == 20


def test_presplit_folder_tree_keeps_its_test_split(tmp_path):
    make_folder_tree(tmp_path / "train", per_class=10)
    make_folder_tree(tmp_path / "test", per_class=3)
    m = get_modality("image", image_params(source="folder", path=str(tmp_path), image_size=16, patch_size=4))
    data = m.load_raw()
    assert len(data.splits["test"]) == 6 and len(data.splits["train"]) + len(data.splits["val"]) == 20


def write_cifar(root, n=20):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane", b"cat"]}, f)
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 2, n))}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)


def test_cifar10_batches(tmp_path):
    write_cifar(tmp_path)
    m = get_modality("image", image_params(source="cifar10", path=str(tmp_path), image_size=32, patch_size=8,
                                           channels=3))
    data = m.load_raw()
    assert len(data.splits["test"]) == 20 and len(data.splits["train"]) + len(data.splits["val"]) == 40
    assert data.splits["train"].labels == ["airplane", "cat"]
    assert data.splits["train"].x.shape[1:] == (3, 32, 32)
    grey = get_modality("image", image_params(source="cifar10", path=str(tmp_path), image_size=28, patch_size=7))
    assert grey.load_raw().splits["test"].x.shape[1:] == (1, 28, 28)


def test_corrupt_cifar_batch_named_or_skipped(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="data_batch_2"):
        read_cifar10(tmp_path, "error", [])
    skipped = []
    parts, _ = read_cifar10(tmp_path, "skip", skipped)
    assert len(parts["train"][0]) == 20 and skipped[0].endswith("data_batch_2")


def test_cifar_unpickler_refuses_code(tmp_path):
    write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(CorruptFileError, match="refusing to load builtins.print"):
        read_cifar10(tmp_path, "error", [])


def test_embedded_digits_split_is_deterministic(tiny_params):
    a = get_modality("image", tiny_params).load_raw()
    b = get_modality("image", tiny_params).load_raw()
    assert np.array_equal(a.splits["test"].x, b.splits["test"].x)
    assert sum(len(s) for s in a.splits.values()) == 400
    assert set(a.splits["test"].y.tolist()) == set(range(10))
