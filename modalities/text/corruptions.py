"""Text corruptions on raw strings (a list of N texts, before tokenizing); the only randomness is the rng passed in.

typos         per letter/digit at 3-15 %: swap with the next character, drop, double-hit a QWERTY neighbour,
              or hit a QWERTY neighbour instead
word_dropout  each word dropped at 5-40 % (a text keeps at least one word)
casing        each word at 10-50 %: written in capitals, or each of its characters' case flipped at 50 %
punctuation   each punctuation mark removed at 20-100 %, and a mark inserted after a word at 3-20 %
"""
from __future__ import annotations

import re
import string

import numpy as np

from modalities.corruptions import Corruption, by_name

TYPO_RATE = {1: 0.03, 2: 0.06, 3: 0.09, 4: 0.12, 5: 0.15}
WORD_DROP = {1: 0.05, 2: 0.1, 3: 0.2, 4: 0.3, 5: 0.4}
CASE_RATE = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4, 5: 0.5}
PUNCT_REMOVE = {1: 0.2, 2: 0.4, 3: 0.6, 4: 0.8, 5: 1.0}
PUNCT_INSERT = {1: 0.03, 2: 0.06, 3: 0.1, 4: 0.15, 5: 0.2}
INSERTED_MARKS = ".,!?;:-"
PUNCTUATION = frozenset(string.punctuation)

_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Keys touching each key on a QWERTY layout (same row +-1, rows above and below, staggered)."""
    where = {key: (r, c) for r, row in enumerate(_ROWS) for c, key in enumerate(row)}
    near = {}
    for key, (r, c) in where.items():
        spots = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
        near[key] = "".join(_ROWS[i][j] for i, j in spots if 0 <= i < len(_ROWS) and 0 <= j < len(_ROWS[i]))
    near.update({k.upper(): v.upper() for k, v in near.items() if k.isalpha()})
    return near


NEIGHBOURS = _keyboard_neighbours()
WORD = re.compile(r"\S+")


def _texts(raw) -> list[str]:
    texts = list(raw)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text corruption: item {i} is {type(text).__name__}, expected str")
    return texts


def _neighbour(char: str, pick: float) -> str:
    keys = NEIGHBOURS.get(char)
    return keys[int(pick * len(keys))] if keys else char


def _typos(text: str, rate: float, rng: np.random.Generator) -> str:
    hit = np.flatnonzero(rng.random(len(text)) < rate)
    ops, picks = rng.integers(4, size=len(hit)), rng.random(len(hit))
    out, done = [], 0
    for i, op, pick in zip(hit.tolist(), ops.tolist(), picks.tolist()):
        char = text[i]
        if i < done or not char.isalnum():
            continue
        out.append(text[done:i])
        done = i + 1
        if op == 0 and i + 1 < len(text):  # swap with the next character
            out.append(text[i + 1] + char)
            done = i + 2
        elif op == 1:  # dropped
            pass
        elif op == 2:  # a neighbouring key hit too
            out.append(char + _neighbour(char, pick))
        else:  # a neighbouring key instead
            out.append(_neighbour(char, pick))
    out.append(text[done:])
    return "".join(out)


def _words(text: str) -> list[re.Match]:
    return list(WORD.finditer(text))


def _word_dropout(text: str, rate: float, rng: np.random.Generator) -> str:
    words = _words(text)
    if not words:
        return text
    drop = rng.random(len(words)) < rate
    if drop.all():
        drop[rng.integers(len(words))] = False
    out, done = [], 0
    for word, dropped in zip(words, drop.tolist()):
        if dropped:  # the word and the whitespace after it
            out.append(text[done:word.start()])
            done = word.end()
            while done < len(text) and text[done].isspace():
                done += 1
    out.append(text[done:])
    return "".join(out)


def _casing(text: str, rate: float, rng: np.random.Generator) -> str:
    words = _words(text)
    chosen, capitals = rng.random(len(words)) < rate, rng.random(len(words)) < 0.5
    out, done = [], 0
    for word, pick, upper in zip(words, chosen.tolist(), capitals.tolist()):
        if not pick:
            continue
        out.append(text[done:word.start()])
        if upper:
            out.append(word.group().upper())
        else:
            flip = rng.random(len(word.group())) < 0.5
            out.append("".join(c.swapcase() if f else c for c, f in zip(word.group(), flip.tolist())))
        done = word.end()
    out.append(text[done:])
    return "".join(out)


def _punctuation(text: str, remove: float, insert: float, rng: np.random.Generator) -> str:
    marks = [i for i, c in enumerate(text) if c in PUNCTUATION]
    removed = {i for i, r in zip(marks, rng.random(len(marks)).tolist()) if r < remove}
    ends = [w.end() for w in _words(text)]
    added = {e: INSERTED_MARKS[k] for e, r, k in zip(ends, rng.random(len(ends)).tolist(),
                                                      rng.integers(len(INSERTED_MARKS), size=len(ends)).tolist())
             if r < insert}
    out = []
    for i, char in enumerate(text):
        if i in added:
            out.append(added[i])
        if i not in removed:
            out.append(char)
    if len(text) in added:
        out.append(added[len(text)])
    return "".join(out)


def corruptions(params) -> dict[str, Corruption]:
    def each(fn):
        return lambda raw, severity, rng: [fn(text, severity, rng) for text in _texts(raw)]

    return by_name(
        Corruption("typos", each(lambda t, s, rng: _typos(t, TYPO_RATE[s], rng)),
                   "per letter/digit 3-15 %: swap, drop, extra or wrong QWERTY-neighbour key"),
        Corruption("word_dropout", each(lambda t, s, rng: _word_dropout(t, WORD_DROP[s], rng)),
                   "words dropped at 5/10/20/30/40 %"),
        Corruption("casing", each(lambda t, s, rng: _casing(t, CASE_RATE[s], rng)),
                   "words in capitals or with flipped case at 10-50 %"),
        Corruption("punctuation", each(lambda t, s, rng: _punctuation(t, PUNCT_REMOVE[s], PUNCT_INSERT[s], rng)),
                   "punctuation removed at 20-100 %, inserted after 3-20 % of words"),
    )
