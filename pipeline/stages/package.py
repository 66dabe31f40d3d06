"""package: dist/<task>/<method>/, what an app embeds: every exported variant of each model (hard links to
exports/<task>/<method>/) with its full MODEL_CARD.md, the export stage's card completed with the latency
measured on each device (reports/latency/) and the robustness figures (metrics/robustness/); see
export/package.py."""
from __future__ import annotations

from devices.io import read_json
from export.model_card import full_cards
from export.package import package_export, remove_unlisted
from pipeline.config import paths
from pipeline.stages.common import start


def load_metrics(stage: str, task: str, method: str) -> dict | None:
    path = paths.metrics_file(stage, task, method)
    return read_json(path) if path.is_file() else None


def main() -> None:
    _, params = start(__doc__)
    cards = full_cards(params.tasks, params.methods, load_metrics, paths.REPORTS / "latency",
                       paths.METRICS / "robustness")
    if not cards:
        raise SystemExit("package: no exported model in metrics/export/; run the export stage first")
    for (task, method), card in cards.items():
        files = package_export(paths.export_dir(task, method), paths.DIST / task / method, card)
        print(f"package: {paths.DIST / task / method}: {len(files)} files")
    remove_unlisted(paths.DIST, set(cards))


if __name__ == "__main__":
    main()
