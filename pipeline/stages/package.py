"""package: dist/<task>/<method>/, what an app embeds: every exported variant of each model (the files of
exports/<task>/<method>/) with its full MODEL_CARD.md, the card the report stage completed with the latency
measured on each device and the robustness figures (reports/model_cards/<task>-<method>.md); see
pipeline/report/package.py."""
from __future__ import annotations

from pathlib import Path

from pipeline.report.package import package_export, remove_unlisted
from pipeline.config import paths
from pipeline.stages.common import start

CARDS = paths.REPORTS / "model_cards"
DIST = Path("dist")


def main() -> None:
    _, params = start(__doc__)
    packaged = set()
    for task in params.tasks:
        for method in params.methods:
            card = CARDS / f"{task}-{method}.md"
            if not card.is_file():
                raise SystemExit(f"package: {card} not found; run the report stage first")
            files = package_export(paths.export_dir(task, method), DIST / task / method, card.read_text())
            packaged.add((task, method))
            print(f"package: {DIST / task / method}: {len(files)} files")
    remove_unlisted(DIST, packaged)


if __name__ == "__main__":
    main()
