"""The summary's robustness section, from metrics/robustness/<task>.json (pipeline/evaluation/robustness.py):
per task a table of method x variant, and per modality a verdict on MAE against SimCLR."""
from __future__ import annotations

import json
from collections.abc import Callable

from pipeline.config import paths
from pipeline.report.tables import METRIC_NAMES, num, pct, table

NEAR_CHANCE = 0.1  # a clean metric within this share of the range above chance (chance .. 1) is "near chance"
INT8_VARIANTS = ("onnx-int8", "openvino-int8")
FROZEN_VARIANTS = {"equal epochs": "linear-probe-equal-epochs", "equal compute": "linear-probe"}


def _read(task: str) -> dict | None:
    path = paths.METRICS / "robustness" / f"{task}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _result(load: Callable, task: str) -> dict | None:
    """The task's robustness results: from `load("robustness", task, "")` where it answers (tests give their
    own), else from metrics/robustness/<task>.json."""
    return load("robustness", task, "") or _read(task)


def _rows(result: dict) -> list[list[str]]:
    rows = []
    for method, variants in result["models"].items():
        for variant, m in variants.items():
            alarms = m.get("false_alarm_rate")
            row = [method, variant, num(m["clean"]), num(m["mean_corrupted"]), pct(m["relative_drop"]),
                   num(m["mce"], ".2f")]
            if alarms is not None:
                corrupted = [v for name, vs in alarms.items() if name != "clean" for v in vs]
                row.append(f"{pct(alarms['clean'])} -> {pct(sum(corrupted) / len(corrupted)) if corrupted else 'n/a'}")
            rows.append(row)
    return rows


def _near_chance(clean: float, chance: float | None) -> bool:
    return chance is not None and clean - chance < NEAR_CHANCE * (1 - chance)


def _compare(result: dict, variant: str) -> tuple[float, float, float, float] | None:
    """(MAE mean corrupted, SimCLR's, MAE clean, SimCLR's) for one variant, None unless both were measured."""
    models = result["models"]
    pair = [models.get(method, {}).get(variant) for method in ("mae", "simclr")]
    if None in pair:
        return None
    return pair[0]["mean_corrupted"], pair[1]["mean_corrupted"], pair[0]["clean"], pair[1]["clean"]


def _order(mae: float, simclr: float) -> str:
    return "more" if mae > simclr else "less" if mae < simclr else "as"


def verdict(name: str, task: str, result: dict) -> str:
    """One line: is MAE more or less robust than SimCLR on this task (mean corrupted metric, the fine-tuned
    PyTorch model), what near-chance models mean for that, whether INT8 changes the answer, and the frozen
    encoders' answer at equal epochs and at equal compute."""
    variants = [v for v in ("pytorch", "onnx-fp32") if _compare(result, v)]
    if not variants:
        return f"- **{name}** ({task}): MAE and SimCLR were not both measured."
    variant = variants[0]
    mae, simclr, mae_clean, simclr_clean = _compare(result, variant)
    order = _order(mae, simclr)
    line = (f"- **{name}** ({task}, fine-tuned, {variant}): MAE {_than(mae, simclr)} SimCLR "
            f"(mean corrupted {mae:.3f} vs {simclr:.3f}; clean {mae_clean:.3f} vs {simclr_clean:.3f})")
    drops = [(c - m) / c if c > 0 else None for m, c in ((mae, mae_clean), (simclr, simclr_clean))]
    if None not in drops and order != "as" and drops[0] != drops[1] and (drops[0] > drops[1]) == (order == "more"):
        line += f", though it keeps {'less' if drops[0] > drops[1] else 'more'} of its clean metric " \
                f"({pct(1 - drops[0])} vs {pct(1 - drops[1])} of it)"
    line += "."
    chance = result.get("chance")
    near = [method for method, clean in (("MAE", mae_clean), ("SimCLR", simclr_clean)) if _near_chance(clean, chance)]
    if near:
        line += (f" {' and '.join(near)} {'is' if len(near) == 1 else 'are'} near chance ({num(chance)}) when clean, "
                 f"so {'its' if len(near) == 1 else 'their'} robustness means little.")
    flips = []
    for int8 in INT8_VARIANTS:
        compared = _compare(result, int8)
        if compared and _order(compared[0], compared[1]) != order:
            flips.append(f"with {int8} MAE is {_order(compared[0], compared[1])} robust "
                         f"({compared[0]:.3f} vs {compared[1]:.3f})")
    measured = [v for v in INT8_VARIANTS if _compare(result, v)]
    if flips:
        line += " INT8 changes the answer: " + "; ".join(flips) + "."
    elif measured:
        line += f" INT8 ({', '.join(measured)}) gives the same answer."
    frozen = [(budget, _compare(result, variant)) for budget, variant in FROZEN_VARIANTS.items()]
    frozen = [f"at {budget} MAE is {_than(compared[0], compared[1])} SimCLR ({compared[0]:.3f} vs {compared[1]:.3f}; "
              f"clean {compared[2]:.3f} vs {compared[3]:.3f})" for budget, compared in frozen if compared]
    if frozen:
        line += " Frozen encoders with a linear probe: " + "; ".join(frozen) + "."
    return line


def _than(mae: float, simclr: float) -> str:
    order = _order(mae, simclr)
    return f"{order} robust {'as' if order == 'as' else 'than'}"


def robustness_section(params, load) -> list[str]:
    """Markdown: per task the table of method x variant (clean, mean corrupted, relative drop, mCE), then per
    modality the verdict lines; nothing when no task has results."""
    lines, verdicts = [], []
    for task, spec in params.tasks.items():
        result = _result(load, task)
        if not result:
            continue
        anomaly = any("false_alarm_rate" in m for vs in result["models"].values() for m in vs.values())
        capped = f", a seeded pick of {result['test_samples']} test samples" if result.get("max_samples") else \
            f", {result['test_samples']} test samples"
        lines += [f"### {task} ({METRIC_NAMES.get(result['metric'], result['metric'])}, {spec.modality})", "",
                  f"Corruptions: {', '.join(result['corruptions'])}; severities {result['severities']}{capped}.", ""]
        lines += table(["method", "variant", "clean", "mean corrupted", "relative drop", "mCE"]
                       + (["false alarms clean -> corrupted"] if anomaly else []), _rows(result))
        verdicts.append((spec.modality, task, result))
    if not lines:
        return []
    by_modality = [verdict(name, task, result) for name in dict.fromkeys(m for m, _, _ in verdicts)
                   for modality, task, result in verdicts if modality == name]
    return (["## Robustness to corrupted inputs (test split)", "",
             "Each corruption is applied to the raw test inputs (what an app receives) at each severity; mean "
             "corrupted: over corruptions and severities; relative drop: from clean; mCE: ImageNet-C's mean "
             "corruption error against the random-init model's same variant (1.0 = as fragile; lower is better). "
             "Anomaly tasks corrupt normal and anomalous clips alike; their false alarms are at the shipped "
             "threshold. Curves: `metrics/robustness/curves/<task>.csv`.", ""]
            + lines + ["### MAE against SimCLR under corruption", ""] + by_modality + [""])
