"""Readers for the text datasets users have, each returning texts with their class names.

- CSV / TSV / JSONL files with a text and a label column named in params (SST-2's
  ``sentence<TAB>label`` TSV works as is)
- the IMDB folder layout ``{train,test}/{pos,neg}/*.txt``

Undecodable bytes, NUL bytes, over-long lines, empty lines, empty texts and unknown labels raise
CorruptFileError naming the file and line; with ``on_corrupt: skip`` the row is left out and recorded
as "file:line". Without a label mapping every raw label value is a class, so a value on fewer rows than
there are splits is taken for a typo and treated as a bad row too.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from modalities.splits import SPLITS, CorruptFileError

IMDB_CLASSES = {"neg": "negative", "pos": "positive"}
MAX_LINE_BYTES = 100_000  # a longer line (or review file) is not a text sample: a binary or broken file
MIN_CLASS_ROWS = len(SPLITS)  # without a label mapping, a label on fewer rows cannot reach every split


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


def _add_row(out: Texts, where: str, text, raw_label, label_map: LabelMap, bad: BadRows) -> bool:
    """Append one row; False when it was a bad row."""
    if not isinstance(text, str) or not text.strip():
        bad.report(where, "empty text")
        return False
    label = _raw_label(raw_label)
    if not label or not label_map.accepts(label):
        bad.report(where, f"label {label!r} is not one of {sorted(label_map.mapping or [])} (params: labels)")
        return False
    out.texts.append(" ".join(text.split()))
    out.labels.append(label_map.name(label))
    return True


def _drop_rare_labels(out: Texts, wheres: list[str], label_map: LabelMap, bad: BadRows) -> Texts:
    """Without a label mapping, rows whose label is on fewer than MIN_CLASS_ROWS rows are bad rows (a typo
    would otherwise become a class of its own); `wheres` names each row of `out`."""
    if label_map.mapping is not None:
        return out
    counts = Counter(out.labels)
    for where, label in zip(wheres, out.labels):
        if counts[label] < MIN_CLASS_ROWS:
            bad.report(where, f"label {label!r} is on {counts[label]} row(s) only, too few for a class "
                              f"(most common labels: {dict(counts.most_common(5))}); fix the row, or map the raw "
                              "values to class names in params (labels)")
    return out.subset([i for i, label in enumerate(out.labels) if counts[label] >= MIN_CLASS_ROWS])


def _text_problem(raw: bytes) -> str | None:
    """Why a line (or review file) is not text: over MAX_LINE_BYTES or holding NUL bytes; None if it is."""
    if len(raw) > MAX_LINE_BYTES:
        return f"{len(raw)} bytes long, over the {MAX_LINE_BYTES}-byte limit for one text (a binary or broken file?)"
    nul = raw.find(b"\0")
    if nul >= 0:
        return f"NUL byte at column {nul + 1} (a binary or UTF-16 file? expected UTF-8 text)"
    return None


def _decoded_lines(path: Path, bad: BadRows):
    """(line number, text) for each line that is UTF-8 text (a leading byte-order mark is dropped)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            problem = _text_problem(raw)
            if problem:
                bad.report(f"{path}:{lineno}", problem)
                continue
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
    out, wheres = Texts(), []
    kind = "TSV" if quoting == csv.QUOTE_NONE else "CSV"
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CorruptFileError(f"{path}:{lines.lineno}: header row not readable as {kind} ({exc})") from exc
    if header is None:
        raise ValueError(f"{path}: empty file, expected a header row")
    text_i, label_i = _column(header, text_column, path), _column(header, label_column, path)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # the reader starts afresh on the next line
            bad.report(f"{path}:{lines.lineno}", f"not readable as {kind} ({exc})")
            continue
        where = f"{path}:{lines.lineno}"
        if not any(f.strip() for f in fields):
            bad.report(where, "empty line")
        elif len(fields) != len(header):
            bad.report(where, f"expected {len(header)} fields like the header, got {len(fields)}")
        elif _add_row(out, where, fields[text_i], fields[label_i], label_map, bad):
            wheres.append(where)
    return _drop_rare_labels(out, wheres, label_map, bad)


def read_jsonl(path: Path, text_key: str, label_key: str, label_map: LabelMap, bad: BadRows) -> Texts:
    """One JSON object per line with the text and label keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text file not found")
    out, wheres = Texts(), []
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
        if _add_row(out, where, row[text_key], row[label_key], label_map, bad):
            wheres.append(where)
    return _drop_rare_labels(out, wheres, label_map, bad)


# ---- IMDB -------------------------------------------------------------------------------------------

def imdb_files(root: Path, split: str) -> list[tuple[Path, str]]:
    """(file, raw label) for root/split/{neg,pos}/*.txt, sorted (train/unsup is ignored)."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: IMDB layout needs '{split}/pos' and '{split}/neg' folders")
    per_class = {raw: sorted((folder / raw).glob("*.txt")) for raw in sorted(IMDB_CLASSES)}
    empty = [str(folder / raw) for raw, found in per_class.items() if not found]
    if empty:
        raise ValueError(f"class folders {empty} hold no review files (*.txt); IMDB needs both pos and neg")
    return [(p, raw) for raw, found in per_class.items() for p in found]


def read_review_file(path: Path, bad: BadRows) -> str | None:
    """One review per file; its HTML line breaks become spaces. None when the file was skipped."""
    raw = Path(path).read_bytes()
    problem = _text_problem(raw)
    if problem:
        bad.report(f"{path}:1", problem)
        return None
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
