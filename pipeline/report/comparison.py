"""The MAE-versus-SimCLR verdict per modality x protocol, at equal epochs and at equal compute (FLOPs),
with all training labels and with a few (probe.label_fraction), from the probe, pretrain and fine-tune
metrics. A method at chance level wins nothing: the random-init encoder stands beside both."""
from __future__ import annotations

from pipeline.report.tables import METRIC_NAMES, num, table

TIE = 0.01  # closer than this on the test split is a tie: the split sizes here make smaller gaps noise
PROBES = (("kNN", "knn_test_accuracy"), ("linear probe", "linear_test_accuracy"))


def probe_scores(probe: dict | None, pretrain: dict | None, budget: str) -> dict | None:
    """The probe scores of the encoder trained at `budget` (equal_epochs | equal_compute), if there is one."""
    if not probe or not pretrain or "knn_test_accuracy" not in probe:
        return None
    trained = pretrain.get("budget", "equal_epochs")
    if budget == "equal_epochs":
        if "equal_epochs" in probe:
            return probe["equal_epochs"]
        return probe if pretrain.get("epochs") == pretrain.get("reference_epochs", pretrain.get("epochs")) else None
    is_reference = pretrain.get("method") == pretrain.get("reference_method")
    return probe if trained == "equal_compute" or is_reference else None


def _score(scores: dict | None, labels: str, key: str) -> float | None:
    part = (scores or {}) if labels == "all" else (scores or {}).get("low_labels") or {}
    return part.get(key)


def winner(mae: float | None, simclr: float | None) -> str:
    if mae is None or simclr is None:
        return "n/a"
    if abs(mae - simclr) < TIE:
        return "tie"
    return "MAE" if mae > simclr else "SimCLR"


def comparison_rows(params, load) -> list[list[str]]:
    rows = []
    methods = [m for m in ("mae", "simclr", "random") if m in params.methods]
    for modality in params.modalities:
        pretrain = {m: load("pretrain", modality, m) for m in methods}
        probe = {m: load("probe", modality, m) for m in methods}
        for budget in ("equal_epochs", "equal_compute"):
            scores = {m: probe_scores(probe[m], pretrain[m], budget if m != "random" else "equal_epochs")
                      for m in methods}
            fraction = next((s["low_labels"]["label_fraction"] for s in scores.values() if s and "low_labels" in s), None)
            for labels in ("all", "few"):
                for protocol, key in PROBES:
                    value = {m: _score(s, labels, key) for m, s in scores.items()}
                    if value.get("mae") is None and value.get("simclr") is None:
                        continue
                    rows.append([modality, protocol, "all" if labels == "all" else f"{fraction:.0%}",
                                 budget.replace("_", " "), *(num(value.get(m)) for m in ("mae", "simclr", "random")),
                                 winner(value.get("mae"), value.get("simclr"))])
        for task, spec in params.tasks.items():
            if spec.modality != modality:
                continue
            ft = {m: (load("finetune", task, m) or {}).get("test_metric") for m in methods}
            budget = (pretrain.get("mae") or {}).get("budget", "equal_epochs").replace("_", " ")
            rows.append([modality, f"fine-tune: {task} ({METRIC_NAMES[spec.metric]})", "all", budget,
                         *(num(ft.get(m)) for m in ("mae", "simclr", "random")), winner(ft.get("mae"), ft.get("simclr"))])
    return rows


def comparison_section(params, load) -> list[str]:
    if not {"mae", "simclr"} <= set(params.methods):
        return []
    rows = comparison_rows(params, load)
    tally: dict[str, dict[str, int]] = {}
    for row in rows:
        tally.setdefault(f"{row[0]}, {row[3]}", {}).setdefault(row[-1], 0)
        tally[f"{row[0]}, {row[3]}"][row[-1]] += 1
    verdicts = [f"- {where}: " + ", ".join(f"{who} {n}" for who, n in sorted(counts.items())) for where, counts in tally.items()]
    return (["## MAE versus SimCLR: who wins where (test split)", "",
             "Equal epochs: both methods pretrained for the reference method's epochs. Equal compute: each method "
             "pretrained for the epochs that cost the same FLOPs (`pretrain.budget`; FLOPs per sample counted with "
             "torch.utils.flop_counter, in the cost table). Probes use the frozen encoder with all training labels "
             f"or a stratified few; fine-tunes use the shipped (equal-compute) encoders. A gap under {TIE:.2f} is a "
             "tie. `random` is the untrained encoder: a winner that does not beat it has learnt nothing useful.", ""]
            + table(["modality", "protocol", "labels", "budget", "MAE", "SimCLR", "random", "winner"], rows)
            + ["", "Wins per modality and budget:", ""] + verdicts + [""])
