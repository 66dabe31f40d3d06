"""The model card of one exported model: what it does, what it takes, what it was trained on, how well each
variant scores, where it runs, what it cannot do and the code it came from.

The export stage gathers the facts (`card_facts`), puts the key ones into the model's metadata
(`card_metadata`), keeps them all in metrics/export/<task>/<method>.json under "model_card" and writes
exports/<task>/<method>/MODEL_CARD.md after quantizing. The report stage renders the same card from those
metrics with what later stages measured: latency per device (reports/latency/*.json) and robustness
(metrics/robustness/<task>.json) into reports/model_cards/<task>-<method>.md (`report_cards`).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from devices.report import MEASURED

CARD_FILE = "MODEL_CARD.md"
INPUT_KEYS = ("input_name", "input_shape", "input_dtype", "input_range")


def card_facts(metadata: Mapping[str, Any], head_fields: Mapping[str, Any], *, metric: str, test_metric: float,
               manifest: Mapping[str, Any], pretrain: Mapping[str, Any] | None, finetune: Mapping[str, Any] | None,
               baseline: Mapping[str, Any] | None, flops: int, profiles: Iterable[str]) -> dict[str, Any]:
    """The JSON-ready facts of a card: `metadata` is the FP32 export's (export.metadata.model_metadata),
    `manifest` data/<modality>/manifest.json, `pretrain`, `finetune` and `baseline` their metrics files."""
    pretrain, finetune = pretrain or {}, finetune or {}
    facts = {
        "task": metadata["task"], "head": metadata["head"], "method": metadata["method"],
        "modality": metadata["modality"], "modality_name": metadata["modality_name"], "labels": metadata["labels"],
        "input": {key: metadata[key] for key in INPUT_KEYS if key in metadata},
        "preprocessing": metadata["preprocessing"], "outputs": dict(head_fields),
        "assets": list(metadata.get("assets", [])),
        "training_data": {"source": manifest.get("source"),
                          "splits": {name: split.get("samples") for name, split in manifest.get("splits", {}).items()}},
        "pretraining": {"method": metadata["method"], "epochs": pretrain.get("epochs"), "steps": pretrain.get("steps")},
        "finetuning": {"epochs": finetune.get("epochs"), "steps": finetune.get("steps")},
        "metric": metric, "test_metric": test_metric,
        "baseline": {"model": baseline.get("model"), "test_metric": baseline.get("test_metric")} if baseline else None,
        "flops_per_sample": flops, "profiles": list(profiles), "source_commit": metadata["source_commit"],
    }
    facts["limitations"] = limitations(facts)
    return facts


def limitations(facts: Mapping[str, Any]) -> list[str]:
    """What the figures say the model cannot be trusted for."""
    found = []
    base = facts.get("baseline") or {}
    if base.get("test_metric") is not None and facts["test_metric"] <= base["test_metric"]:
        found.append(f"does not beat its baseline {base.get('model')}: {facts['metric']} {facts['test_metric']:.4f} "
                     f"against {base['test_metric']:.4f} on the test split")
    if facts["method"] == "random":
        found.append("its encoder was not pretrained (random initialisation): it is the point of comparison "
                     "for the pretrained methods")
    source = facts["training_data"].get("source") or ""
    if "(embedded)" in source:
        found.append(f"trained and tested only on the project's small embedded default data ({source}), "
                     "not on data from the field: retrain on real data before trusting its figures")
    return found


def card_metadata(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The key facts of the card that travel inside the model file (the rest is in the card beside it)."""
    return {"training_data": facts["training_data"], "pretraining": facts["pretraining"],
            "test_metric": {facts["metric"]: facts["test_metric"]}, "baseline": facts["baseline"],
            "limitations": facts["limitations"], "flops_per_sample": facts["flops_per_sample"], "model_card": CARD_FILE}


def render_card(export_metrics: Mapping[str, Any], quantize_metrics: Mapping[str, Any] | None = None,
                reports: list[dict] | None = None, robustness: Mapping[str, Any] | None = None) -> str:
    """The card in Markdown from metrics/export/<task>/<method>.json (its "model_card" facts and FP32
    variants) and metrics/quantize/...; with the device `reports` and the task's `robustness` figures
    when a later stage has them."""
    facts = export_metrics.get("model_card")
    if not facts:
        raise ValueError(f"export metrics of {export_metrics.get('task')}-{export_metrics.get('method')}: no "
                         "'model_card' facts (written by the export stage); export the model again")
    variants = {**export_metrics.get("variants", {}), **(quantize_metrics or {}).get("variants", {})}
    lines = _intro(facts) + _variant_lines(facts, variants) + _profile_lines(facts, variants, reports)
    if reports is not None:
        lines += _measured_lines(facts, reports)
    if robustness is not None:
        lines += _robustness_lines(facts, robustness)
    lines += ["## Known limitations", ""] + [f"- {item}" for item in facts["limitations"] or ["none found"]]
    lines += ["", "## Code version", "", f"Built from `{facts['source_commit']}`.", ""]
    return "\n".join(lines)


def report_cards(tasks: Iterable[str], methods: Iterable[str], load: Callable[[str, str, str], dict | None],
                 latency_dir: str | Path, robustness_dir: str | Path) -> dict[str, str]:
    """{"<task>-<method>": card} for every exported method, with the latency reports in `latency_dir` and
    `robustness_dir`/<task>.json where it exists; `load(stage, task, method)` reads metrics/<stage>/."""
    reports = [json.loads(path.read_text()) for path in sorted(Path(latency_dir).glob("*.json"))]
    cards = {}
    for task in tasks:
        robustness_file = Path(robustness_dir) / f"{task}.json"
        robustness = json.loads(robustness_file.read_text()) if robustness_file.is_file() else None
        for method in methods:
            exported = load("export", task, method)
            if exported:
                cards[f"{task}-{method}"] = render_card(exported, load("quantize", task, method), reports, robustness)
    return cards


def _num(value: Any, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def _intro(facts: Mapping[str, Any]) -> list[str]:
    data, pre, fine = facts["training_data"], facts["pretraining"], facts["finetuning"]
    spec = facts["input"]
    pretraining = ("none: random initialisation" if pre["method"] == "random"
                   else f"{pre['method']}, {pre['steps']} steps ({pre['epochs']} epochs)")
    lines = [f"# Model card: {facts['task']} ({facts['method']})", "",
             f"A {facts['head']} model for the task `{facts['task']}` on {facts['modality']} data "
             f"(`{facts['modality_name']}`): the project's transformer encoder, pretrained by {pre['method']}, "
             "with the task's head, fine-tuned.", "",
             "## Labels", "", ", ".join(f"`{label}`" for label in facts["labels"]), "",
             "## Input and preprocessing", "",
             f"- input `{spec.get('input_name')}`: shape {spec.get('input_shape')} (batch first), "
             f"{spec.get('input_dtype')}" + (f", values in [{spec['input_range'][0]}, {spec['input_range'][1]})"
                                             if spec.get("input_range") else ""),
             *(f"- preprocessing `{key}`: {json.dumps(value)}" for key, value in facts["preprocessing"].items()),
             *(f"- reading the output, `{key}`: {json.dumps(value)}" for key, value in facts["outputs"].items()),
             *([f"- assets beside the model: {', '.join(f'`assets/{name}`' for name in facts['assets'])}"]
               if facts["assets"] else []), "",
             "## Training data and method", "",
             f"- data: {data.get('source')}; samples per split: "
             + ", ".join(f"{name} {count}" for name, count in data["splits"].items()),
             f"- pretraining: {pretraining}",
             f"- fine-tuning: {fine['steps']} steps ({fine['epochs']} epochs)",
             f"- compute: {_num(facts['flops_per_sample'] and facts['flops_per_sample'] / 1e6, ',.1f')} MFLOPs "
             "per inference at batch 1 "
             "(matrix multiplies, convolutions and attention, counted by torch's FlopCounterMode)"]
    if facts.get("baseline"):
        lines.append(f"- baseline on the same splits: {facts['baseline']['model']}, {facts['metric']} "
                     f"{_num(facts['baseline']['test_metric'])}")
    return lines + [""]


def _variant_lines(facts: Mapping[str, Any], variants: Mapping[str, dict]) -> list[str]:
    metric = facts["metric"]
    lines = [f"## Test metric of each variant ({metric}, test split)", "",
             f"| variant | {metric} | size (MB) | max abs diff vs its reference |", "|---|---:|---:|---:|",
             f"| PyTorch (models/finetune) | {_num(facts['test_metric'])} | | |"]
    for name, v in variants.items():
        if "error" in v:
            lines.append(f"| `{name}` | failed: {str(v['error']).replace('|', '/')} | | |")
            continue
        lines.append(f"| `{name}` | {_num(v.get('test_metric'))} | {_num(v.get('size_bytes', 0) / 2**20, '.2f')} | "
                     f"{_num(v.get('max_abs_diff'), '.2e')} |")
    return lines + ["", "FP32 and FP16 variants are compared with PyTorch, INT8 and device variants with the FP32 "
                        "ONNX export.", ""]


def _profile_lines(facts: Mapping[str, Any], variants: Mapping[str, dict], reports: list[dict] | None) -> list[str]:
    prefix = f"{facts['task']}/{facts['method']}/"
    checked = {r["profile"]: [c for c in r.get("compatibility", []) if c["model"].startswith(prefix)]
               for r in reports or []}
    lines = ["## Device profiles", ""]
    for profile in facts["profiles"]:
        made = [f"`{name}` ({'**failed**: ' + str(v['error']) if 'error' in v else v.get('precision', '')})"
                for name, v in variants.items() if v.get("profile") == profile]
        text = f"- `{profile}`: " + (", ".join(made) if made else "the standard exports")
        if profile in checked:
            applicable = [c for c in checked[profile] if c.get("applicable", True)]
            passed = [f"`{c['model'].removeprefix(prefix)}`" for c in applicable if c["ok"]]
            failed = [f"`{c['model'].removeprefix(prefix)}` ({', '.join(x['check'] for x in c['checks'] if not x['ok'])})"
                      for c in applicable if not c["ok"]]
            text += "; compatibility checks: " + ("all pass" if not failed else
                                                  f"pass: {', '.join(passed) or 'none'}; fail: {', '.join(failed)}")
        else:
            text += f"; compatibility checks and latency: see reports/latency/{profile}.md"
        lines.append(text)
    return lines + [""]


def _measured_lines(facts: Mapping[str, Any], reports: list[dict]) -> list[str]:
    prefix, eager = f"{facts['task']}/{facts['method']}/", f"{facts['task']}-{facts['method']} (models/finetune)"
    lines = ["## Measured on devices", "",
             "Latency in ms per batch; GFLOP/s achieved at the largest batch measured (reports/latency/).", "",
             "| device | model | runtime | precision | batch | p50 | p99 | samples/s | GFLOP/s | meets budget |",
             "|---|---|---|---|---:|---:|---:|---:|---:|:---:|"]
    not_measured = []
    for report in reports:
        rows = [r for r in report.get("rows", []) if r["model"].startswith(prefix) or r["model"] == eager]
        if not rows:
            why = (f"{report.get('status')}: {report.get('reason')}" if report.get("status") != MEASURED
                   else "none of this model's files was measured there")
            not_measured.append(f"- `{report['profile']}`: {why} (reports/latency/{report['profile']}.md)")
        for r in rows:
            meets = r.get("meets_budget")
            lines.append(f"| `{report['profile']}` | `{r['model'].removeprefix(prefix)}` | {r['runtime']} | "
                         f"{r['precision']} | {r['batch']} | {_num(r['p50_ms'], '.3f')} | {_num(r['p99_ms'], '.3f')} | "
                         f"{_num(r['throughput'], ',.0f')} | {_num(r.get('gflops_per_s'), '.2f')} | "
                         f"{'—' if meets is None else 'yes' if meets else '**no**'} |")
    return lines + ["", *not_measured, *([""] if not_measured else [])]


def _robustness_lines(facts: Mapping[str, Any], robustness: Mapping[str, Any]) -> list[str]:
    """metrics/robustness/<task>.json's figures of this method (pipeline/evaluation/robustness.py): per
    variant the clean metric, its mean over corruptions and severities, and the worst corruption."""
    variants = (robustness.get("models") or {}).get(facts["method"]) or {}
    lines = ["## Robustness", "", f"{facts['metric']} on the test split corrupted at severities "
             f"{robustness.get('severities')} (metrics/robustness/{facts['task']}.json).", ""]
    if not variants:
        return lines + [f"No figures for {facts['method']} in that file.", ""]
    lines += ["| variant | clean | mean corrupted | relative drop | mCE | worst corruption (mean) |",
              "|---|---:|---:|---:|---:|---|"]
    for name, v in variants.items():
        means = {c: sum(values) / len(values) for c, values in (v.get("by_corruption") or {}).items() if values}
        worst = min(means, key=means.get) if means else None
        lines.append(f"| `{name}` | {_num(v.get('clean'))} | {_num(v.get('mean_corrupted'))} | "
                     f"{_num(v.get('relative_drop'), '.1%')} | {_num(v.get('mce'), '.2f')} | "
                     + (f"{worst} ({_num(means[worst])})" if worst else "—") + " |")
    return lines + [""]
