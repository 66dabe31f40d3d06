"""report: reports/summary.md, the tables a user reads first, and metrics/summary.json, the headline
figures `dvc metrics show` prints; built only from measured metrics files."""
from __future__ import annotations

from devices.io import write_json, write_text
from pipeline.config import paths
from pipeline.report.summary import headline_metrics, summary
from pipeline.stages.common import start


def main() -> None:
    _, params = start(__doc__)
    target = paths.REPORTS / "summary.md"
    write_text(target, summary(params))
    write_json(paths.METRICS / "summary.json", headline_metrics(params))
    print(f"report: wrote {target} and {paths.METRICS / 'summary.json'}")


if __name__ == "__main__":
    main()
