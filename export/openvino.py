"""ONNX -> OpenVINO IR (model.xml + model.bin) per precision, carrying the ONNX metadata along."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devices.io import scratch_dir
from export.files import move_into_place
from export.metadata import read_metadata, set_ir_metadata

PRECISIONS = ("fp32", "fp16")


def export_openvino(onnx_path: str | Path, out_dir: str | Path,
                    precisions: Sequence[str] = PRECISIONS) -> dict[str, Path]:
    """Write out_dir/<precision>/model.xml (+ .bin) for each precision; returns {precision: xml path}.

    fp16 stores the weights as FP16 (half the .bin); the device still decides the compute
    precision. The ONNX metadata, plus "precision", goes into the IR's rt_info["model_info"].
    """
    import openvino as ov

    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions or len(set(precisions)) != len(precisions):
        raise ValueError(f"precisions {list(precisions)}: expected distinct values from {list(PRECISIONS)}")
    metadata = read_metadata(onnx_path)  # also rejects a missing or unreadable file, naming it
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:
        raise ValueError(f"{onnx_path}: OpenVINO cannot convert this ONNX model: {exc}") from exc

    written = {}
    for precision in precisions:
        variant = model.clone()
        set_ir_metadata(variant, {**metadata, "precision": precision})
        # compress_to_fp16 must be explicit: save_model defaults to True, which would make the
        # "fp32" IR an FP16 one.
        written[precision] = save_ir(variant, out_dir / precision / "model.xml", compress_to_fp16=precision == "fp16")
    return written


def save_ir(model, xml_path: str | Path, compress_to_fp16: bool) -> Path:
    """ov.save_model into a scratch folder, then move .bin and .xml into place (mode 0644).

    The .bin is replaced first: the .xml is what readers open, so a new .xml never points at an
    old .bin. (Each file is replaced atomically; the pair is not.)
    """
    import openvino as ov

    xml_path = Path(xml_path)
    if xml_path.suffix != ".xml":
        raise ValueError(f"{xml_path}: OpenVINO IR path must end in .xml")
    with scratch_dir(xml_path.parent) as tmp:
        tmp_xml = tmp / xml_path.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        move_into_place(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        move_into_place(tmp_xml, xml_path)
    return xml_path
