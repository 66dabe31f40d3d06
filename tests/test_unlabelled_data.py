"""Unlabelled pretraining data: texts beyond the labelled sample (never a labelled text, whatever its
split), a user's own file, saved by prepare beside the splits and added to pretraining only."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modalities import get_modality
from modalities.text.embedded import embedded_unlabelled, read_unlabelled_file
from pipeline.config.params import load

ROOT = Path(__file__).resolve().parents[1]


def tiny_text_params(tmp_path, **text):
    path = tmp_path / "params.yaml"  # the tiny profile asks for 100 unlabelled texts
    shutil.copy(ROOT / "tests" / "params.tiny.yaml", path)
    params = load(path)
    if text:
        params.modalities["text"] = params.modalities["text"].model_copy(update=text)
    return params


def test_unlabelled_texts_leave_out_every_labelled_one_and_are_seeded():
    labelled = set(embedded_unlabelled(50, 120, 80, set(), seed=0))
    again = embedded_unlabelled(50, 120, 80, set(), seed=0)
    assert set(again) == labelled and len(again) == 50
    other = embedded_unlabelled(50, 120, 80, labelled, seed=0)
    assert not labelled & set(other) and len(other) == 50
    assert embedded_unlabelled(50, 120, 80, set(), seed=1) != again


def test_prepare_keeps_unlabelled_ids_apart_from_the_labelled_splits(tmp_path):
    params = tiny_text_params(tmp_path)
    modality = get_modality("text", params)
    prepared = modality.load_raw()
    assert prepared.unlabelled.shape == (100, params.modalities["text"].max_len)
    assert prepared.unlabelled.dtype == prepared.splits["train"].x.dtype
    labelled = {tuple(row) for split in prepared.splits.values() for row in split.x}
    assert sum(tuple(row) in labelled for row in prepared.unlabelled) <= 2  # distinct texts; short ones may tokenize alike


def test_a_users_unlabelled_file_is_read_and_checked(tmp_path):
    good = tmp_path / "mine.txt"
    good.write_text("a  first   text\n\nsecond text\n", encoding="utf-8")
    assert read_unlabelled_file(good) == ["a first text", "second text"]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_unlabelled_file(tmp_path / "missing.txt")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(ValueError, match="latin.txt: not UTF-8"):
        read_unlabelled_file(tmp_path / "latin.txt")
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="blank.txt: holds no text"):
        read_unlabelled_file(tmp_path / "blank.txt")
    params = tiny_text_params(tmp_path, unlabelled_file=str(good))
    prepared = get_modality("text", params).load_raw()
    assert len(prepared.unlabelled) == 102


def test_pretraining_reads_train_plus_unlabelled_and_refuses_a_mismatch(tmp_path, monkeypatch):
    for name in ("pipeline", "modalities", "devices", "export"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    tiny_text_params(tmp_path)
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "pipeline.stages.prepare", "--modality", "text"], cwd=tmp_path, env=env,
                   check=True, timeout=300)
    manifest = json.loads((tmp_path / "data/text/manifest.json").read_text())
    assert manifest["unlabelled"]["samples"] == 100
    monkeypatch.chdir(tmp_path)
    from pipeline.stages.pretrain import pretraining_data

    params = load(tmp_path / "params.yaml")
    modality = get_modality("text", params)
    x, y = pretraining_data(modality)
    train = manifest["splits"]["train"]["samples"]
    assert len(x) == train + 100 and torch.all(y[train:] == -1) and torch.all(y[:train] >= 0)
    np.savez(tmp_path / "data/text/unlabelled.npz", x=np.zeros((3, 5), np.int64))
    with pytest.raises(ValueError, match=r"unlabelled.npz: samples int64 \(5,\) do not match"):
        pretraining_data(modality)
