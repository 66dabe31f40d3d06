"""Markdown table and number formatting shared by the report sections."""
from __future__ import annotations

METRIC_NAMES = {"accuracy": "accuracy", "map": "mAP@0.5", "auroc": "AUROC"}


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def num(value, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def finetuned(params, head: str, load):
    """(task, method, fine-tune metrics or {}) for every task with this head and every method."""
    for task, spec in params.tasks.items():
        if spec.head == head:
            for method in params.methods:
                yield task, method, load("finetune", task, method) or {}
