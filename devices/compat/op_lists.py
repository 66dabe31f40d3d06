"""Documented operator lists of targets not present on this host: devices/profiles/ops/<runtime>-<target>.txt.

Each file names its source in its header; a line is an operator ("domain:Op", or "Op" for the default
ONNX domain) and, after "|", a condition the target puts on it ("" when none).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devices.profile import PROFILES_DIR

OPS_DIR = PROFILES_DIR / "ops"
DEFAULT_DOMAIN = "ai.onnx"


@dataclass(frozen=True)
class OperatorList:
    """A target's documented operators: name -> condition ("" when none)."""

    path: Path
    ops: dict[str, str]

    def lookup(self, op: str) -> str | None:
        """The condition for ``op`` ("" if unconditional), or None when the list lacks it."""
        return self.ops.get(op)

    @property
    def source(self) -> str:
        """The list's path relative to the project root, as results cite it."""
        return str(self.path.relative_to(PROFILES_DIR.parent.parent))


def operator_list_path(runtime: str, target: str) -> Path:
    return OPS_DIR / f"{runtime}-{target}.txt"


def load_operator_list(runtime: str, target: str) -> OperatorList | None:
    """The documented list for an onnxruntime provider or OpenVINO device; None if there is none."""
    path = operator_list_path(runtime, target)
    if not path.is_file():
        return None
    ops: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, condition = line.partition("|")
        name = name.strip()
        if not name or " " in name:
            raise ValueError(f"{path}:{number}: expected an operator name, got {raw!r}")
        ops[name] = condition.strip()
    return OperatorList(path, ops)


def short_name(op: str) -> str:
    """"ai.onnx:MatMul" -> "MatMul"; operators of other domains keep theirs."""
    return op.split(":", 1)[1] if op.startswith(DEFAULT_DOMAIN + ":") else op


def against_lists(ops: list[str], chain: list[tuple[str, OperatorList | None]]) -> tuple[list[str], dict, dict]:
    """Assign each op to the first target in ``chain`` whose list has it.

    Returns (unsupported ops, {op: condition} for conditional ones, {target: [ops]} beyond the first).
    """
    unsupported, conditions, fallback = [], {}, {}
    for op in ops:
        for index, (target, listing) in enumerate(chain):
            condition = listing.lookup(op) if listing is not None else None
            if condition is None:
                continue
            if condition:
                conditions[short_name(op)] = condition
            if index:
                fallback.setdefault(target, []).append(short_name(op))
            break
        else:
            unsupported.append(short_name(op))
    return unsupported, conditions, fallback


def conditions_text(conditions: dict[str, str]) -> str:
    return "; conditions to verify: " + "; ".join(f"{op}: {c}" for op, c in conditions.items()) if conditions else ""
