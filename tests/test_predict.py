"""devices.predict / devices.preprocess: an exported classifier run on image files, as an app would,
checked against the torch model it came from."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELS = [f"digit-{i}" for i in range(10)]
PREPROCESSING = {"layout": "NCHW", "color": "grayscale", "resize": [28, 28],
                 "scale": "divide uint8 pixels by 255 to get [0, 1]",
                 "normalize_in_graph": {"mean": [0.5], "std": [0.5]}}


def metadata(**overrides) -> dict:
    meta = {"task": "digits", "head": "classification", "method": "mae", "modality": "image", "labels": LABELS,
            "input_name": "image", "input_shape": [-1, 1, 28, 28], "input_dtype": "float32",
            "preprocessing": PREPROCESSING, "output": "logits", "source_commit": "test", "precision": "fp32"}
    meta.update(overrides)
    return meta


def tiny_classifier(seed: int = 0):
    """Normalise in the graph, conv, ReLU, linear: [N,1,28,28] in [0,1] -> 10 logits."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
            self.fc = nn.Linear(4 * 14 * 14, 10)

        def forward(self, x):
            x = (x - 0.5) / 0.5
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    torch.manual_seed(seed)
    net = Net().eval()
    with torch.no_grad():  # spread the logits so the top classes are well separated
        net.fc.weight.mul_(8.0)
    return net


def export(net, path: Path, dynamic: bool = True, meta: dict | None = None) -> Path:
    import torch

    from export.metadata import write_metadata

    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    torch.onnx.export(net, (torch.zeros(1, 1, 28, 28),), str(path), input_names=["image"], output_names=["logits"],
                      opset_version=17, dynamo=False, dynamic_axes=axes)
    write_metadata(path, meta or metadata())
    return path


def draw_digit(path: Path, size=(40, 48), seven=True) -> Path:
    """An RGB image of a bright stroke digit on a dark background, not 28x28, so resize and colour
    conversion are exercised."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (10, 10, 30))
    draw = ImageDraw.Draw(image)
    w, h = size
    if seven:
        draw.line([(8, 8), (w - 8, 8), (w // 2, h - 6)], fill=(250, 240, 230), width=4)
    else:
        draw.ellipse([(10, 6), (w - 10, h - 6)], outline=(255, 255, 255), width=4)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def torch_probs(net, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(x)).double(), dim=1).numpy()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    images = [draw_digit(root / "seven.png"), draw_digit(root / "zero.png", size=(64, 64), seven=False)]
    x = np.concatenate([expected_pixels(p) for p in images])
    for seed in range(50):  # a (seeded) net that tells the two images apart, so a mix-up would show
        net = tiny_classifier(seed)
        if len(set(torch_probs(net, x).argmax(axis=1))) == 2:
            break
    model = export(net, root / "exports" / "digits-test" / "model.onnx")
    return {"root": root, "net": net, "model": model, "images": images}


def expected_pixels(path: Path) -> np.ndarray:
    """The preprocessing the metadata describes, written out independently with PIL."""
    from PIL import Image

    image = Image.open(path).convert("L").resize((28, 28), Image.BILINEAR)
    return (np.asarray(image, dtype=np.float32) / 255.0)[None, None]


def assert_matches(results: list[dict], probs: np.ndarray, top_k: int):
    assert len(results) == len(probs)
    for r, p in zip(results, probs):
        order = np.argsort(-p, kind="stable")[:top_k]
        assert r["index"] == int(order[0]) and r["label"] == LABELS[order[0]]
        assert r["score"] == pytest.approx(p[order[0]], abs=1e-5)
        assert [t["index"] for t in r["top_k"]] == [int(i) for i in order]
        assert [t["label"] for t in r["top_k"]] == [LABELS[i] for i in order]
        assert [t["score"] for t in r["top_k"]] == pytest.approx(p[order], abs=1e-5)


# --- the Predictor ----------------------------------------------------------------------------------


def test_predictor_matches_torch_on_image_files(built):
    from devices.predict import Predictor

    predictor = Predictor(built["model"])
    assert predictor.labels == LABELS and predictor.spec.modality == "image"
    assert predictor.spec.shape == (None, 1, 28, 28) and predictor.spec.dtype == np.float32

    x = np.concatenate([predictor.preprocess(p) for p in built["images"]])
    assert x.shape == (2, 1, 28, 28) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(x, np.concatenate([expected_pixels(p) for p in built["images"]]))

    probs = torch_probs(built["net"], x)
    assert probs[0].argmax() != probs[1].argmax()  # two distinct answers, so a mix-up would show
    results = predictor.predict([str(p) for p in built["images"]], top_k=3)
    assert_matches(results, probs, 3)
    assert [r["input"] for r in results] == [str(p) for p in built["images"]]

    # a model-ready batch gives the same answers; one path gives one result
    assert_matches(predictor.predict(x, top_k=10), probs, 10)
    assert_matches(predictor.predict(built["images"][0], top_k=1), probs[:1], 1)


def test_cli_matches_torch(built):
    import torch  # noqa: F401  (the expected answer comes from the torch model)

    from devices.predict import Predictor

    x = np.concatenate([Predictor(built["model"]).preprocess(p) for p in built["images"]])
    probs = torch_probs(built["net"], x)
    proc = subprocess.run(
        [sys.executable, "-m", "devices.predict", str(built["model"]), *map(str, built["images"]), "--top-k", "3",
         "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert_matches(results, probs, 3)
    assert [r["input"] for r in results] == [str(p) for p in built["images"]]

    text = subprocess.run(
        [sys.executable, "-m", "devices.predict", str(built["model"]), str(built["images"][0])],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert text.returncode == 0 and text.stdout.startswith(f"{built['images'][0]}: {results[0]['label']} (")
    assert "top-3:" in text.stdout


def test_openvino_ir_and_fixed_batch_models(built, tmp_path):
    from devices.predict import Predictor
    from export.openvino import export_openvino

    x = np.concatenate([Predictor(built["model"]).preprocess(p) for p in built["images"] * 2])  # 4 samples
    probs = torch_probs(built["net"], x)
    xml = export_openvino(built["model"], tmp_path / "openvino", ["fp32"])["fp32"]
    ir = Predictor(xml)
    assert ir.runtime == "openvino" and ir.labels == LABELS and ir.metadata["precision"] == "fp32"
    assert_matches(ir.predict([str(p) for p in built["images"]]), probs[:2], 3)

    fixed = Predictor(export(built["net"], tmp_path / "fixed.onnx", dynamic=False))
    assert fixed.spec.shape == (1, 1, 28, 28)
    assert_matches(fixed.predict(x, top_k=3), probs, 3)  # run one sample at a time


# --- errors -----------------------------------------------------------------------------------------


def test_bad_model_files_are_named(built, tmp_path):
    from devices.predict import ModelLoadError, Predictor

    with pytest.raises(FileNotFoundError, match="nothere.onnx: model file not found"):
        Predictor(tmp_path / "nothere.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(ModelLoadError, match="notes.onnx"):
        Predictor(text)
    data = built["model"].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated.onnx"):
        Predictor(truncated)
    with pytest.raises(ModelLoadError, match="model.pt: not an exported model"):
        (tmp_path / "model.pt").write_bytes(b"x")
        Predictor(tmp_path / "model.pt")

    proc = subprocess.run([sys.executable, "-m", "devices.predict", str(truncated), str(built["images"][0])],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "truncated.onnx" in proc.stderr and proc.stderr.startswith("error:")


@pytest.mark.parametrize(
    "make,got",
    [
        (lambda x: x.astype(np.float64), "float64 [1, 1, 28, 28]"),
        (lambda x: x[0], "float32 [1, 28, 28]"),
        (lambda x: np.zeros((2, 1, 32, 32), np.float32), "float32 [2, 1, 32, 32]"),
        (lambda x: np.zeros((2, 3, 28, 28), np.float32), "float32 [2, 3, 28, 28]"),
        (lambda x: (x[0, 0] * 255).astype(np.uint8), "uint8 [28, 28]"),
    ],
)
def test_wrong_array_names_expected_and_got(built, make, got):
    from devices.predict import InputError, Predictor

    predictor = Predictor(built["model"])
    x = predictor.preprocess(built["images"][0])
    with pytest.raises(InputError) as err:
        predictor.predict(make(x))
    msg = str(err.value)
    assert "float32 [N,1,28,28]" in msg and got in msg


def test_bad_images_are_named(built, tmp_path):
    from devices.predict import Predictor
    from devices.preprocess import PreprocessError

    predictor = Predictor(built["model"])
    with pytest.raises(FileNotFoundError, match="ghost.png"):
        predictor.predict(str(tmp_path / "ghost.png"))
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(PreprocessError, match="fake.png: not a readable image"):
        predictor.predict(str(fake))
    # raw uint8 pixels are fine for preprocess (and then for predict)
    pixels = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(built["images"][0]))
    np.testing.assert_array_equal(predictor.preprocess(pixels), expected_pixels(built["images"][0]))


def test_unknown_modality_names_it_and_new_modalities_plug_in(built, tmp_path):
    from devices import preprocess as pre
    from devices.predict import Predictor
    from devices.preprocess import PreprocessError, base

    smell = export(built["net"], tmp_path / "smell.onnx", meta=metadata(modality="smell"))
    predictor = Predictor(smell)
    with pytest.raises(PreprocessError) as err:
        predictor.predict(str(built["images"][0]))
    assert "'smell'" in str(err.value) and "image" in str(err.value)
    x = Predictor(built["model"]).preprocess(built["images"][0])
    assert_matches(predictor.predict(x), torch_probs(built["net"], x), 3)  # model-ready arrays still work

    # a new modality is one registered function; predict.py is unchanged
    @pre.register("smell")
    def smell_to_input(item, spec):
        return np.full((1, *spec.shape[1:]), float(item), dtype=spec.dtype)

    try:
        result = predictor.predict([0.25])
        assert_matches(result, torch_probs(built["net"], np.full((1, 1, 28, 28), 0.25, np.float32)), 3)
    finally:
        base._REGISTRY.pop("smell")


def test_app_side_modules_import_and_predict_without_torch(built):
    """devices.predict / compat / preprocess need no torch, yaml or pydantic; PIL only when reading images."""
    code = textwrap.dedent(f"""
        import json, sys
        for name in ("torch", "yaml", "pydantic"):
            sys.modules[name] = None
        import devices.predict, devices.compat, devices.preprocess, devices.profile
        assert "PIL" not in sys.modules, "PIL imported eagerly"
        from devices.predict import Predictor
        print(json.dumps(Predictor({str(built["model"])!r}).predict({str(built["images"][0])!r})))
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from devices.predict import Predictor

    x = Predictor(built["model"]).preprocess(built["images"][0])
    assert_matches(json.loads(proc.stdout), torch_probs(built["net"], x), 3)
