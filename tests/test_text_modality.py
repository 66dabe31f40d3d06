import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devices.preprocess import InputSpec, PreprocessError
from devices.preprocess.text import preprocess_text
from modalities.splits import CorruptFileError
from modalities.text.embedded import embedded_sentiment
from modalities.text.modality import TextModality
from modalities.text.tokenizer import CLS_ID, PAD_ID
from pipeline.models.encoder import build_encoder
from pipeline.tasks.classification.model import Classifier
from pipeline.models.mae import MAE
from pipeline.config.params import ParamsError, parse

POSITIVE = ["a warm and funny film", "great acting and a clever story", "i loved every minute of it",
            "the best comedy this year", "a moving, beautiful drama"]
NEGATIVE = ["a dull and tired mess", "the plot makes no sense at all", "i wanted my money back",
            "boring, slow and far too long", "the worst script in years"]


def text_params(encoder=None, **text):
    raw = {"modalities": {"text": {"vocab_size": 300, "max_len": 16, **text}}, "tasks": {"t": {"modality": "text"}}}
    if encoder:
        raw["encoder"] = encoder
    return parse(raw)


def modality(tmp_path, **text) -> TextModality:
    return TextModality(text_params(**text).modality("text"), seed=0)


def write_prepared(m, data, folder):
    """What the prepare stage writes: the splits, the manifest's labels and PreparedData.files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in data.splits.items():
        with open(folder / f"{name}.npz", "wb") as f:
            m.save_split(split, f)
    (folder / "manifest.json").write_text(json.dumps({"labels": data.splits["train"].labels}))
    for name, text in data.files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def rows(n=40):
    """n (sentence, 0/1) pairs, half positive."""
    return [(f"{i}: {(POSITIVE if i % 2 else NEGATIVE)[i % 5]}", i % 2) for i in range(n)]


def write_csv(path, n=40, extra=b""):
    lines = ["text,label"] + [f'"{s}, really",{y}' for s, y in rows(n)]
    path.write_bytes(("\n".join(lines) + "\n").encode() + extra)
    return path


def write_sst2(path, n=40):
    lines = ["sentence\tlabel"] + [f'"quoted" {s}\t{y}' for s, y in rows(n)]  # SST-2 leaves quotes unescaped
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path, n=40):
    path.write_text("".join(json.dumps({"text": s, "label": y}) + "\n" for s, y in rows(n)))
    return path


def write_imdb(root, per_class=10):
    for split in ("train", "test"):
        for cls, sentences in (("pos", POSITIVE), ("neg", NEGATIVE)):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                (root / split / cls / f"{i}_7.txt").write_text(f"{sentences[i % 5]}.<br /><br />Review {i}.")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("ignored, no label")
    return root


# ---- formats ----------------------------------------------------------------------------------------

def test_csv_loads_splits_and_maps_labels(tmp_path):
    m = modality(tmp_path, source="csv", path=str(write_csv(tmp_path / "d.csv")), labels={0: "negative", 1: "positive"},
                 split={"val": 0.2, "test": 0.2})
    data = m.load_raw()
    assert sum(len(s) for s in data.splits.values()) == 40 and min(len(s) for s in data.splits.values()) > 0
    train = data.splits["train"]
    assert train.labels == ["negative", "positive"] and train.x.shape[1] == 16 and train.x.dtype == np.int32
    assert (train.x[:, 0] == CLS_ID).all() and (data.splits["test"].x[:, 0] == CLS_ID).all()
    folder = write_prepared(m, data, tmp_path / "data")
    assert list(data.files) == ["tokenizer.json"] and m.deploy_files(folder) == [folder / "tokenizer.json"]
    fresh = modality(tmp_path, source="csv", path=str(tmp_path / "d.csv"))
    test = fresh.load_split(folder, "test")  # keeps the tokenizer beside the splits, for the MAE figure
    assert fresh.tokenizer.decode(test.x[0].tolist()) == m.tokenizer.decode(test.x[0].tolist())


def test_sst2_tsv_works_as_is(tmp_path):
    m = modality(tmp_path, source="tsv", path=str(write_sst2(tmp_path / "train.tsv")), text_column="sentence",
                 labels={0: "negative", 1: "positive"})
    data = m.load_raw()
    assert sum(len(s) for s in data.splits.values()) == 40
    tok = m.tokenizer
    assert '"' in tok.decode(data.splits["train"].x[0].tolist())  # quotes are text, not CSV quoting


def test_jsonl_without_mapping_uses_raw_values(tmp_path):
    data = modality(tmp_path, source="jsonl", path=str(write_jsonl(tmp_path / "d.jsonl"))).load_raw()
    assert data.splits["train"].labels == ["0", "1"] and sum(len(s) for s in data.splits.values()) == 40


def test_imdb_layout_keeps_its_test_split(tmp_path):
    m = modality(tmp_path, source="imdb", path=str(write_imdb(tmp_path / "aclImdb")))
    data = m.load_raw()
    assert len(data.splits["test"]) == 20 and len(data.splits["train"]) + len(data.splits["val"]) == 20
    assert data.splits["train"].labels == ["negative", "positive"]
    assert "<br" not in m.tokenizer.decode(data.splits["test"].x[0].tolist())


@pytest.mark.parametrize("source, writer, bad, line", [
    ("csv", write_csv, b'"caf\xe9 au lait",1\n', 42),
    ("csv", write_csv, b"\n", 42),
    ("csv", write_csv, b'"   ",1\n', 42),
    ("jsonl", write_jsonl, b'{"text": "caf\xe9", "label": 1}\n', 41),
    ("jsonl", write_jsonl, b"\n", 41),
])
def test_bad_rows_name_file_and_line_or_are_skipped(tmp_path, source, writer, bad, line):
    path = tmp_path / f"d.{source}"
    writer(path)
    path.write_bytes(path.read_bytes() + bad + path.read_bytes().splitlines(keepends=True)[-1])
    with pytest.raises(CorruptFileError, match=rf"d\.{source}:{line}: (not valid UTF-8|empty (line|text))"):
        modality(tmp_path, source=source, path=str(path)).load_raw()
    data = modality(tmp_path, source=source, path=str(path), on_corrupt="skip").load_raw()
    assert data.skipped == [f"{path}:{line}"] and sum(len(s) for s in data.splits.values()) == 41


def test_unknown_label_and_bad_imdb_file(tmp_path):
    path = write_csv(tmp_path / "d.csv", extra=b'"fine text",7\n')
    with pytest.raises(CorruptFileError, match=r"d\.csv:42: label '7'"):
        modality(tmp_path, source="csv", path=str(path), labels={0: "neg", 1: "pos"}).load_raw()
    root = write_imdb(tmp_path / "imdb")
    (root / "train" / "pos" / "bad.txt").write_bytes(b"first line\nsecond \xff line")
    with pytest.raises(CorruptFileError, match=r"bad\.txt:2: not valid UTF-8"):
        modality(tmp_path, source="imdb", path=str(root)).load_raw()
    skipped = modality(tmp_path, source="imdb", path=str(root), on_corrupt="skip").load_raw().skipped
    assert skipped == [f"{root / 'train' / 'pos' / 'bad.txt'}:2"]


def test_missing_files_and_columns_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        modality(tmp_path, source="csv", path=str(tmp_path / "nope.csv")).load_raw()
    with pytest.raises(ValueError, match="no column 'review'"):
        modality(tmp_path, source="csv", path=str(write_csv(tmp_path / "d.csv")), text_column="review").load_raw()
    with pytest.raises(FileNotFoundError, match="run the prepare stage"):
        modality(tmp_path).deploy_files(tmp_path / "data")


def test_bad_params_are_named():
    with pytest.raises(ParamsError, match="modalities.text.source"):
        text_params(source="xml", path="x")
    with pytest.raises(ParamsError, match="modalities.text.vocab_size"):
        text_params(vocab_size=100)
    with pytest.raises(ParamsError, match="needs 'path'"):
        text_params(source="csv")
    with pytest.raises(ParamsError, match="modalities.text.augment.token_drop"):
        text_params(augment={"token_drop": 1.5})


def test_tokenizer_is_trained_on_the_training_split_only(tmp_path):
    """Each row carries its own made-up word three times: a whole-word token only for training rows."""
    words = [f"zq{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(60)]
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f'"{s} {w} {w} {w}",{y}\n' for (s, y), w in zip(rows(60), words)))
    m = modality(tmp_path, source="csv", path=str(path), vocab_size=1000)
    data = m.load_raw()
    tok = m.tokenizer
    for name, split in data.splits.items():
        for ids in split.x:
            word = next(w for w in tok.decode(ids.tolist()).split() if w.startswith("zq"))
            assert (f"Ġ{word}" in tok.get_vocab()) == (name == "train"), (name, word)


# ---- model -------------------------------------------------------------------------------------------

SMALL = {"embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0}


@pytest.fixture
def prepared(tmp_path):
    m = modality(tmp_path, source="csv", path=str(write_csv(tmp_path / "d.csv", n=60)), max_len=32)
    data = m.load_raw()
    write_prepared(m, data, tmp_path / "data")
    return m, data


def small_encoder(m, max_len=None):
    params = text_params(SMALL, max_len=max_len or m.params.max_len)
    torch.manual_seed(0)
    return build_encoder(TextModality(params.modality("text")), params.encoder).eval()


def test_padding_length_does_not_change_a_sample(prepared):
    m, data = prepared
    x = torch.from_numpy(data.splits["train"].x[:6]).long()  # max_len 32
    longer = torch.cat([x, torch.full((6, 16), PAD_ID)], dim=1)  # the same sentences padded to 48
    short_enc, long_enc = small_encoder(m), small_encoder(m, max_len=48)
    long_enc.load_state_dict(short_enc.state_dict())
    with torch.no_grad():
        a, b = short_enc.features(x), long_enc.features(longer)
        alone = short_enc.features(x[:1])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[:1], alone, atol=1e-5, rtol=1e-5)


def test_exported_onnx_matches_pytorch_with_padding(prepared, tmp_path):
    import onnxruntime as ort

    from export.onnx import export_onnx

    m, data = prepared
    model = Classifier(small_encoder(m), 2).eval()
    x = torch.from_numpy(data.splits["test"].x).long()
    path = export_onnx(model, m.example_input(2), tmp_path / "model.onnx", {"modality": "text"},
                       input_name=m.input_spec()["name"], output_names=["logits"], opset=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert (x == PAD_ID).any()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_mae_mask_hides_the_ratio_of_real_tokens_only(prepared):
    m, data = prepared
    x = torch.from_numpy(data.splits["train"].x).long()
    mask = m.mask(x, torch.Generator().manual_seed(0))
    hidden = mask.mask.bool()
    real = (x != PAD_ID).sum(1) - 1  # tokens after [CLS]
    assert not hidden[:, 0].any() and not hidden[x == PAD_ID].any()
    assert torch.equal(hidden.sum(1), (real * 0.5).round().clamp(min=1).long())
    kept = torch.gather(hidden, 1, mask.ids_keep)
    assert not kept.any() and (mask.ids_keep[:, 0] == 0).all()  # [CLS] kept, hidden tokens never
    visible = (x != PAD_ID) & ~hidden
    assert mask.ids_keep.shape[1] == visible.sum(1).max()
    assert torch.equal(mask.ids_restore.argsort(1)[:, : mask.ids_keep.shape[1]], mask.ids_keep)
    again = m.mask(x, torch.Generator().manual_seed(0))
    assert torch.equal(again.mask, mask.mask)


def test_mae_loss_is_cross_entropy_on_hidden_tokens():
    m = TextModality(text_params().modality("text"))
    pred, target = torch.randn(2, 16, 300), torch.randint(0, 300, (2, 16))
    mask = torch.zeros(2, 16)
    mask[0, 3], mask[1, 5] = 1, 1
    want = (F.cross_entropy(pred[0, 3:4], target[0, 3:4]) + F.cross_entropy(pred[1, 5:6], target[1, 5:6])) / 2
    hidden = mask.bool()
    torch.testing.assert_close(m.mae_loss(pred[hidden], target[hidden]), want)
    assert torch.equal(m.mae_target(target.int(), True), target)


def test_mae_trains_through_the_shared_encoder(prepared):
    m, data = prepared
    encoder = small_encoder(m).train()
    mae = MAE(encoder, m, decoder_dim=16, decoder_depth=1, decoder_heads=2)
    x = torch.from_numpy(data.splits["train"].x[:8]).long()
    loss, pred, mask = mae.reconstruct(x, torch.Generator().manual_seed(0))
    assert pred.shape == (8, 32, 300) and torch.isfinite(loss)
    loss.backward()
    assert encoder.token_embedding.embedding.weight.grad.abs().sum() > 0
    figure = m.reconstruction_figure(x[:2], pred.detach(), mask, True)
    assert figure.dtype == np.uint8 and figure.ndim == 2 and (figure < 128).any()


def test_simclr_views_are_seeded_and_stay_valid(prepared):
    m, data = prepared
    x = torch.from_numpy(data.splits["train"].x).long()
    v1, v2 = m.simclr_views(x, torch.Generator().manual_seed(3))
    w1, _ = m.simclr_views(x, torch.Generator().manual_seed(3))
    assert torch.equal(v1, w1) and not torch.equal(v1, v2)
    for view in (v1, v2, m.finetune_augment(x, torch.Generator().manual_seed(3))):
        assert (view[:, 0] == CLS_ID).all()
        real = view != PAD_ID
        assert torch.equal(real, real.cumsum(1) == torch.arange(1, x.shape[1] + 1))  # padding only at the end
        assert (real.sum(1) >= 2).all() and (real.sum(1) <= (x != PAD_ID).sum(1)).all()
        for orig, new in zip(x.tolist(), view.tolist()):  # only tokens of the sentence itself
            assert set(new) - {PAD_ID} <= set(orig)


def test_embedded_corpus_small_and_balanced():
    texts = embedded_sentiment(reviews=6, tweets=4, seed=1)
    assert len(texts) == 10 and texts.labels.count("positive") == 5
    assert all(t.strip() and "\ufffd" not in t and "http" not in t for t in texts.texts)
    assert texts.texts == embedded_sentiment(reviews=6, tweets=4, seed=1).texts


# ---- app side ----------------------------------------------------------------------------------------

def test_app_preprocessing_gives_the_stored_ids(prepared, tmp_path):
    m, data = prepared
    spec = InputSpec(modality="text", shape=(None, 32), dtype=np.dtype("int64"),
                     preprocessing=m.preprocessing(), name="input_ids", assets_dir=tmp_path / "data")
    sentence = f"{rows(60)[0][0]}, really"
    ids = preprocess_text(sentence, spec)
    assert ids.dtype == np.int64 and ids.shape == (1, 32)
    stored = np.concatenate([s.x for s in data.splits.values()])
    assert (stored == ids).all(1).sum() == 1  # the very row prepare stored for this sentence
    file = tmp_path / "review.txt"
    file.write_text(sentence + "\n")
    assert (preprocess_text(file, spec) == ids).all() and (preprocess_text(str(file), spec) == ids).all()
    with pytest.raises(PreprocessError, match="tokenizer.json"):
        preprocess_text(sentence, InputSpec("text", (None, 32), np.dtype("int64"), m.preprocessing()))
    with pytest.raises(PreprocessError, match="empty text"):
        preprocess_text("   ", spec)

