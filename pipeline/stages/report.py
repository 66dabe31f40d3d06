"""report: reports/summary.md, the tables a user reads first, and metrics/summary.json, the headline
figures `dvc metrics show` prints; reports/results.{csv,json} (every variant on every device) and
reports/selection.json (the variant to ship per device and task); reports/index.html, all of it on one
page that works offline; built only from measured metrics files.
With `report.budget_gate`, it fails after writing them when a task has no variant within its latency
budget on a measured device."""
from __future__ import annotations

from devices.io import write_json, write_text
from export.model_card import report_cards
from pipeline.config import paths
from pipeline.report.html import write_html
from pipeline.report.results import enforce_budget_gate, write_results
from pipeline.report.summary import headline_metrics, load_metrics, summary
from pipeline.stages.common import start


def main() -> None:
    _, params = start(__doc__)
    target = paths.REPORTS / "summary.md"
    write_text(target, summary(params))
    write_json(paths.METRICS / "summary.json", headline_metrics(params))
    print(f"report: wrote {target} and {paths.METRICS / 'summary.json'}")
    cards = report_cards(params.tasks, params.methods, load_metrics, paths.REPORTS / "latency",
                         paths.METRICS / "robustness")
    for name, card in cards.items():
        write_text(paths.REPORTS / "model_cards" / f"{name}.md", card)
    print(f"report: wrote {len(cards)} model cards in {paths.REPORTS / 'model_cards'}")
    gate = params.report.budget_gate
    failures = write_results(params.bench.profiles, list(params.tasks), paths.REPORTS / "latency", paths.METRICS,
                             paths.REPORTS, gate=gate)
    print(f"report: wrote {paths.REPORTS}/results.csv, results.json and selection.json")
    print(f"report: wrote {write_html(params, paths.REPORTS / 'index.html')}")  # reads results and selection
    enforce_budget_gate(failures, gate)  # last: every output is written first


if __name__ == "__main__":
    main()
