"""devices.predict on model files an app did not make: metadata that is malformed, out of range or at odds with
the graph is rejected when the model is loaded, before any input is read, with an error naming the file and key."""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from devices.metadata import MetadataError, validate_metadata
from devices.predict import Predictor, main
from devices.preprocess import InputSpec, PreprocessError

ROOT = Path(__file__).resolve().parents[1]
IMAGE_PRE = {"layout": "NCHW", "color": "grayscale", "resize": [8, 8]}


def tiny_model(path: Path, meta: dict, shape=(None, 1, 8, 8), dtype: str = "float32") -> Path:
    """A graph that flattens its input and multiplies it into 3 logits; `meta` written as the exporter writes
    it (strings as they are, anything else as JSON), so a raw string stands for malformed JSON."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64}[dtype]
    features = int(np.prod(shape[1:])) if None not in shape[1:] and np.prod(shape[1:]) <= 4096 else None
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["xf"], ["flat"], axis=1)]
    if features is None:  # dynamic sizes: average instead, so the graph still runs
        nodes[1] = helper.make_node("ReduceMean", ["xf"], ["pooled"], keepdims=0,
                                    axes=list(range(1, len(shape))))
        nodes.append(helper.make_node("Unsqueeze", ["pooled", "one"], ["flat"]))
        features = 1
    nodes.append(helper.make_node("MatMul", ["flat", "w"], ["logits"]))
    inits = [numpy_helper.from_array(np.linspace(-1, 1, features * 3, dtype=np.float32).reshape(features, 3), "w")]
    if nodes[1].op_type == "ReduceMean":
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "one"))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", elem, list(shape))],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def image_meta(**overrides) -> dict:
    meta = {"modality": "image", "labels": ["a", "b", "c"], "input_shape": [-1, 1, 8, 8], "input_dtype": "float32",
            "preprocessing": IMAGE_PRE, "output": "logits"}
    meta.update(overrides)
    return meta


def png(path: Path, size=(12, 10)) -> Path:
    from PIL import Image

    Image.fromarray(np.arange(size[0] * size[1], dtype=np.uint8).reshape(size[1], size[0])).save(path)
    return path


def rejected(path: Path, *names: str) -> str:
    """Loading the model raises MetadataError naming the file and each of `names`; the message."""
    with pytest.raises(MetadataError) as err:
        Predictor(path)
    message = str(err.value)
    assert str(path) in message, message
    for name in names:
        assert name in message, (name, message)
    return message


@pytest.fixture
def no_image_work(monkeypatch):
    """Any image opened or resized fails the test: the metadata must be rejected before."""
    from PIL import Image

    import devices.preprocess.image as image_module

    def forbidden(*args, **kwargs):
        raise AssertionError("an image was opened or resized before the metadata was checked")

    monkeypatch.setattr(image_module, "_open_image", forbidden)
    monkeypatch.setattr(Image.Image, "resize", forbidden)
    monkeypatch.setattr(Image, "new", forbidden)


# --- the resize bomb --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(None, 1, 8, 8), (None, 1, None, None)], ids=["fixed-graph", "dynamic-graph"])
def test_resize_bomb_is_rejected_before_any_image_is_read(tmp_path, no_image_work, shape):
    model = tiny_model(tmp_path / "bomb.onnx", image_meta(
        input_shape=[-1, 1, -1, -1], preprocessing={**IMAGE_PRE, "resize": [100000, 100000]}), shape=shape)
    message = rejected(model, "'preprocessing.resize'", "[100000, 100000]")
    assert ("8 to match the model's input shape [?, 1, 8, 8]" in message) == (shape[2] == 8)
    assert shape[2] == 8 or "at most" in message


def test_resize_bomb_under_a_memory_limit(tmp_path):
    """The command line, limited to 4 GiB of address space: a clear error and exit 2, no MemoryError, no kill
    (the resize alone would need 10 GB)."""
    model = tiny_model(tmp_path / "bomb.onnx", image_meta(preprocessing={**IMAGE_PRE, "resize": [100000, 100000]}))
    image = png(tmp_path / "photo.png")
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from devices.predict import main
        sys.exit(main([{str(model)!r}, {str(image)!r}, "--threads", "1"]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr
    assert any(line.startswith("error: ") for line in proc.stderr.splitlines()) and str(model) in proc.stderr
    assert "'preprocessing.resize' is [100000, 100000]" in proc.stderr


def test_graph_with_a_huge_input_is_rejected(tmp_path, no_image_work):
    model = tiny_model(tmp_path / "huge.onnx", {"modality": "image"}, shape=(None, 3, 100000, 100000))
    rejected(model, "input shape [?, 3, 100000, 100000]", "at most")


def test_preprocess_checks_the_size_against_the_graph_before_opening(tmp_path, no_image_work):
    """An InputSpec built by hand (no Predictor) still never resizes to a size the graph does not take."""
    from devices.preprocess import preprocess

    spec = InputSpec("image", (None, 1, 8, 8), np.dtype("float32"), {**IMAGE_PRE, "resize": [100000, 100000]})
    with pytest.raises(PreprocessError, match=r"resize \[100000, 100000\] does not match the model's input"):
        preprocess(str(tmp_path / "photo.png"), spec)


# --- fields the app trusts --------------------------------------------------------------------------


def test_threshold_that_is_not_a_number(tmp_path):
    model = tiny_model(tmp_path / "faults.onnx", image_meta(task_kind="anomaly", output="score", threshold="abc"))
    message = rejected(model, "'threshold'", "'abc'", "finite number")
    assert "could not convert" not in message
    rejected(tiny_model(tmp_path / "nan.onnx", image_meta(task_kind="anomaly", threshold="NaN")), "'threshold'")
    rejected(tiny_model(tmp_path / "none.onnx", image_meta(task_kind="anomaly")), "'threshold' is missing")


def test_unknown_postprocess_key(tmp_path):
    from devices.postprocess.detection import POSTPROCESS_ARGS, postprocess

    model = tiny_model(tmp_path / "detector.onnx", image_meta(
        task_kind="detection", output="boxes_scores", postprocess={"score_threshold": 0.1, "nms": 0.5}))
    rejected(model, "'postprocess'", "'nms'", "score_threshold, iou_threshold, max_detections")
    bad_value = tiny_model(tmp_path / "det2.onnx", image_meta(task_kind="detection",
                                                              postprocess={"max_detections": "all"}))
    rejected(bad_value, "'postprocess.max_detections'", "'all'")
    # the table the check uses is postprocess's own keyword arguments
    assert list(POSTPROCESS_ARGS) == list(inspect.signature(postprocess).parameters)[2:]


@pytest.mark.parametrize("labels", ['["cat", "dog"', "cat,dog,bird", [], [["cat"]], {"0": "cat"}],
                         ids=["truncated-json", "plain-string", "empty", "nested", "object"])
def test_malformed_labels(tmp_path, labels, capsys):
    model = tiny_model(tmp_path / "labels.onnx", image_meta(labels=labels))
    rejected(model, "'labels'", "list of class names")
    assert main([str(model), str(png(tmp_path / "photo.png"))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'labels'" in err and "labels.onnx" in err


def _with_assets(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "manifest.json").write_text("{}")
    return root / "assets"


@pytest.mark.parametrize("name", ["../../secret.json", "/etc/passwd", "..\\secret.json", "sub/../../secret.json",
                                  "C:\\secret.json", ""])
def test_asset_paths_must_stay_in_the_assets_folder(tmp_path, name):
    _with_assets(tmp_path / "export")
    (tmp_path / "secret.json").write_text("{}")
    text_meta = {"modality": "text", "input_shape": [-1, 4], "input_dtype": "int64",
                 "preprocessing": {"tokenizer": name, "max_len": 4}}
    model = tiny_model(tmp_path / "export" / "text.onnx", text_meta, shape=(None, 4), dtype="int64")
    rejected(model, "'preprocessing.tokenizer'", "assets/ folder")
    audio_meta = {"modality": "audio", "input_shape": [-1, 1, 2, 3],
                  "preprocessing": {"sample_rate": 16000, "clip_samples": 16000, "frontend": name}}
    rejected(tiny_model(tmp_path / "export" / "audio.onnx", audio_meta, shape=(None, 1, 2, 3)),
             "'preprocessing.frontend'")
    rejected(tiny_model(tmp_path / "export" / "listed.onnx", {"assets": ["tokenizer.json", name]}), "'assets'")


def test_asset_links_leading_out_of_the_folder(tmp_path):
    assets = _with_assets(tmp_path / "export")
    (tmp_path / "secret.json").write_text("{}")
    (assets / "tokenizer.json").symlink_to(tmp_path / "secret.json")
    meta = {"modality": "text", "preprocessing": {"tokenizer": "tokenizer.json", "max_len": 4}}
    model = tiny_model(tmp_path / "export" / "text.onnx", meta, shape=(None, 4), dtype="int64")
    rejected(model, "'preprocessing.tokenizer'", "resolves outside")
    # and the spec itself refuses, for code that builds one by hand
    spec = InputSpec("text", (None, 4), np.dtype("int64"), {"tokenizer": "tokenizer.json"}, assets_dir=assets)
    with pytest.raises(PreprocessError, match="outside"):
        spec.asset("tokenizer.json")
    with pytest.raises(PreprocessError, match="outside"):
        spec.asset("../secret.json")


VIDEO = {"modality": "video", "preprocessing": {"layout": "NCTHW", "frames": 4, "fps": 10.0, "resize": [8, 8],
                                                "color": "grayscale"}}
AUDIO = {"modality": "audio", "preprocessing": {"sample_rate": 16000, "clip_samples": 16000, "crop": "center",
                                                "frontend": "frontend.onnx", "log_mel": {"n_mels": 2, "frames": 3}}}
TEXT = {"modality": "text", "input_range": [0, 100], "preprocessing": {"tokenizer": "tokenizer.json", "max_len": 4}}
SHAPES = {"image": (None, 1, 8, 8), "video": (None, 1, 4, 8, 8), "audio": (None, 1, 2, 3), "text": (None, 4)}


def _set(meta: dict, key: str, value) -> dict:
    """A copy of meta with `key` ("a" or "a.b") set to value."""
    meta = json.loads(json.dumps(meta))
    *parents, last = key.split(".")
    target = meta
    for part in parents:
        target = target[part]
    target[last] = value
    return meta


@pytest.mark.parametrize("base,key,value", [
    (image_meta(), "input_shape", [-1, 3, 8, 8]),
    (image_meta(), "input_shape", "[-1, 1, 8"),
    (image_meta(), "input_dtype", "int64"),
    (image_meta(), "input_dtype", "banana"),
    (image_meta(), "task_kind", "segmentation"),
    (image_meta(), "output", "probabilty"),
    (image_meta(), "modality", ["image"]),
    (image_meta(), "preprocessing", "{not json"),
    (image_meta(), "preprocessing.color", "RGB"),
    (image_meta(), "preprocessing.color", "cmyk"),
    (image_meta(), "preprocessing.layout", "HWC"),
    (image_meta(), "preprocessing.resize", [8]),
    (image_meta(), "preprocessing.resize", [-8, 8]),
    (image_meta(), "preprocessing.normalize", {"mean": [0.5], "std": [0]}),
    (VIDEO, "preprocessing.frames", 400),
    (VIDEO, "preprocessing.frames", "4"),
    (VIDEO, "preprocessing.fps", -5),
    (VIDEO, "preprocessing.resize", [8, 16]),
    (AUDIO, "preprocessing.sample_rate", "16k"),
    (AUDIO, "preprocessing.sample_rate", 10 ** 9),
    (AUDIO, "preprocessing.clip_samples", 10 ** 12),
    (AUDIO, "preprocessing.crop", "middle"),
    (AUDIO, "preprocessing.log_mel.frames", 300),
    (TEXT, "preprocessing.max_len", 512),
    (TEXT, "input_range", [100, 0]),
])
def test_other_trusted_fields(tmp_path, base, key, value):
    kind = base["modality"]
    dtype = "int64" if kind == "text" else "float32"
    model = tiny_model(tmp_path / f"{kind}.onnx", _set(base, key, value), shape=SHAPES[kind], dtype=dtype)
    rejected(model, f"'{key}'")


def test_well_formed_models_load_and_run(tmp_path):
    """No false alarms: exporter-shaped metadata for each kind passes, and an image model runs on a file."""
    predictor = Predictor(tiny_model(tmp_path / "image.onnx", image_meta()))
    (result,) = predictor.predict(str(png(tmp_path / "photo.png")))
    assert result["label"] in ("a", "b", "c")
    for kind, meta in (("video", VIDEO), ("audio", AUDIO), ("text", TEXT)):
        Predictor(tiny_model(tmp_path / f"{kind}.onnx", meta, shape=SHAPES[kind],
                             dtype="int64" if kind == "text" else "float32"))
    Predictor(tiny_model(tmp_path / "bare.onnx", {}))  # no metadata at all: model-ready arrays only
    # a modality nobody registered is left to its own preprocessor
    Predictor(tiny_model(tmp_path / "smell.onnx", {"modality": "smell", "preprocessing": {"resize": "big"}}))


def test_validate_metadata_names_the_value_and_what_was_expected():
    with pytest.raises(MetadataError) as err:
        validate_metadata("m.onnx", {"modality": "image", "preprocessing": {"resize": [100000, 100000]}},
                          [None, 1, 8, 8], np.dtype("float32"))
    assert str(err.value) == ("m.onnx: metadata 'preprocessing.resize' is [100000, 100000]; expected 8 to match "
                              "the model's input shape [?, 1, 8, 8] (axis 2)")


def test_resampling_between_rates_with_a_tiny_common_factor_is_refused():
    from devices.preprocess.audio import resample

    with pytest.raises(PreprocessError, match="44101 Hz to 16000 Hz"):
        resample(np.zeros(100, np.float32), 44101, 16000)
    assert resample(np.zeros(441, np.float32), 44100, 16000).shape == (160,)
