"""dist/<task>/<method>/ (pipeline/report/package.py): every exported file, byte for byte, with the full model card,
nothing of an earlier package or of a killed export's scratch, and a clear error for a missing export."""
from __future__ import annotations

import pytest

from devices.model_files import SCRATCH_PREFIX
from export.model_card import CARD_FILE
from pipeline.report.package import package_export, remove_unlisted

FILES = {"model.onnx": b"onnx", "model.int8.onnx": b"int8", "openvino/fp32/model.xml": b"<xml/>",
         "openvino/fp32/model.bin": b"bin", "targets/intel-npu/openvino/fp16/model.xml": b"<fp16/>",
         "assets/tokenizer.json": b"{}"}


def _export(folder, files=FILES):
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / CARD_FILE).write_text("# the export stage's card, without latency")
    (folder / f"{SCRATCH_PREFIX}killed").mkdir()
    (folder / f"{SCRATCH_PREFIX}killed" / "half.onnx").write_bytes(b"half")
    (folder / "openvino" / ".model.xml.abc.tmp.xml").write_bytes(b"half")
    return folder


def test_every_export_file_with_the_full_card_and_no_scratch(tmp_path):
    export = _export(tmp_path / "exports/digits/mae")
    target = tmp_path / "dist/digits/mae"
    packaged = package_export(export, target, "# full card\n## Measured on devices")
    assert sorted(p.as_posix() for p in packaged) == sorted([*FILES, CARD_FILE])
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == sorted([*FILES, CARD_FILE])
    assert all((target / name).read_bytes() == data for name, data in FILES.items())
    assert (target / CARD_FILE).read_text().startswith("# full card")
    assert (export / CARD_FILE).read_text().startswith("# the export stage's card")  # the export is untouched


def test_packaging_again_leaves_nothing_of_the_earlier_package(tmp_path):
    export = _export(tmp_path / "exports/digits/mae")
    target = tmp_path / "dist/digits/mae"
    package_export(export, target, "# card 1")
    (export / "model.int8.onnx").unlink()  # the new export has no such variant
    package_export(export, target, "# card 2")
    assert not (target / "model.int8.onnx").exists() and (target / CARD_FILE).read_text() == "# card 2"
    assert [p.name for p in target.parent.iterdir()] == ["mae"]  # no scratch folder left beside it


def test_a_missing_export_is_an_error_naming_it(tmp_path):
    (tmp_path / "exports/digits/mae").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"exports/digits/mae: no model\.onnx.*export stage"):
        package_export(tmp_path / "exports/digits/mae", tmp_path / "dist/digits/mae", "# card")


def test_packages_of_tasks_and_methods_no_longer_configured_are_removed(tmp_path):
    for task, method in (("digits", "mae"), ("digits", "simclr"), ("old_task", "mae")):
        package_export(_export(tmp_path / "exports" / task / method), tmp_path / "dist" / task / method, "# card")
    removed = remove_unlisted(tmp_path / "dist", {("digits", "mae")})
    assert sorted(p.relative_to(tmp_path / "dist").as_posix() for p in removed) == ["digits/simclr", "old_task/mae"]
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["digits"]
