"""The text tokenizer: byte-level BPE trained on the training split at prepare time, saved as tokenizer.json.

That one file carries the normaliser, [CLS] template, truncation and padding, so training and apps
(devices/preprocess/text.py) turn a string into the same ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

PAD, CLS = "[PAD]", "[CLS]"
SPECIAL_TOKENS = [PAD, CLS]  # given to the trainer in this order, so these are ids 0 and 1
PAD_ID, CLS_ID = 0, 1
TOKENIZER_FILE = "tokenizer.json"


def train_tokenizer(texts: list[str], vocab_size: int, min_frequency: int, max_len: int, lowercase: bool):
    """A byte-level BPE tokenizer whose encode() gives exactly max_len ids: [CLS] + pieces, truncated, padded.

    Byte-level: any text encodes without an unknown token. BPE rather than WordPiece because the
    tokenizers WordPiece trainer numbers its '##' pieces in hash order, so the same params gave a
    different tokenizer.json on each run; byte-level BPE starts from a sorted alphabet and is reproducible.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=lowercase, lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{CLS} $A", special_tokens=[(CLS, CLS_ID)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.enable_truncation(max_length=max_len)
    tokenizer.enable_padding(length=max_len, pad_id=PAD_ID, pad_token=PAD)
    return tokenizer


def encode_texts(tokenizer, texts: list[str]) -> np.ndarray:
    """Texts -> int32 ids (N, max_len) with the tokenizer's own truncation and padding."""
    return np.asarray([e.ids for e in tokenizer.encode_batch(texts)], dtype=np.int32)


def load_tokenizer(data_dir: Path):
    from tokenizers import Tokenizer

    path = Path(data_dir) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text tokenizer not found; run the prepare stage for text first")
    return Tokenizer.from_file(str(path))
