"""The report page's plots: one function per kind, each returning a PNG as a base64 data URI, so the page
embeds it and works offline. matplotlib's object API on the Agg canvas: no pyplot, no global state."""
from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SIZE = (5.0, 3.2)  # inches; at DPI a plot is 400 x 256 pixels
DPI = 80


def _data_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})  # no version stamp: same bytes each run
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_file(data: bytes) -> str:
    """A PNG file's bytes as a data URI."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def curves(title: str, xlabel: str, ylabel: str, series: dict[str, list[tuple[float, float]]]) -> str:
    """One line per series ({label: [(x, y), ...]}): learning curves, loss curves."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    for label, points in series.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", markersize=3, label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _data_uri(fig)


def pareto(title: str, ylabel: str, points: list[dict], budget_ms: float | None) -> str:
    """Metric against batch-1 p50 latency, one colour per method (points: dicts with "method", "p50_ms",
    "metric", "front", optionally "selected"); the Pareto front joined by a dashed line, the selected variant
    a star, the latency budget a dotted vertical line."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    for method in dict.fromkeys(p["method"] for p in points):
        mine = [p for p in points if p["method"] == method]
        ax.scatter([p["p50_ms"] for p in mine], [p["metric"] for p in mine], s=18, label=method, alpha=0.8)
    front = sorted((p for p in points if p["front"]), key=lambda p: p["p50_ms"])
    ax.plot([p["p50_ms"] for p in front], [p["metric"] for p in front], "k--o", fillstyle="none", markersize=8,
            linewidth=1, label="Pareto front")
    chosen = [p for p in points if p.get("selected")]
    if chosen:
        ax.scatter([p["p50_ms"] for p in chosen], [p["metric"] for p in chosen], marker="*", s=160, color="gold",
                   edgecolors="black", zorder=3, label="selected")
    if budget_ms is not None:
        ax.axvline(budget_ms, color="red", linestyle=":", label=f"budget {budget_ms:g} ms (p99)")
    ax.set(title=title, xlabel="batch-1 p50 latency (ms)", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return _data_uri(fig)


def severity(title: str, ylabel: str, series: dict[tuple[str, str], list[tuple[float, float]]]) -> str:
    """Metric against corruption severity ({(method, variant): [(severity, metric), ...]}): one colour per
    method, one line style per variant."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(m for m, _ in series))}
    styles = dict(zip(dict.fromkeys(v for _, v in series), ("-", "--", ":", "-.") * 4))
    for (method, variant), points in series.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, color=colours[method], linestyle=styles[variant], marker="o", markersize=3,
                label=f"{method} / {variant}")
    ax.set(title=title, xlabel="severity (0 = clean)", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return _data_uri(fig)
