"""python -m devices.compat: the checks for one or more profiles, printed, optionally written as JSON.

Exit status: 0 when no model fails a check, 1 when one does, 2 when a profile or model cannot be read.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from devices.compat.checks import FAILED, NOT_APPLICABLE, NOT_CHECKABLE, PASSED, check_all, check_model, verdict
from devices.compat.facts import CompatError
from devices.io import write_json
from devices.profile import ProfileError, load_profile


_MARKS = {True: "ok ", False: "no ", None: "-- "}  # None: not checked here


def format_results(results: list[dict]) -> str:
    """A line per model and profile; the reasons of failing and unchecked checks (of every check when
    none fails)."""
    lines = []
    for r in results:
        lines.append(f"{r['profile']:<14} {verdict(r):<5} {r['model']}")
        for c in r["checks"]:
            if c["ok"] is not True or r["ok"] is not False:
                lines.append(f"    {c['check']:<14} {_MARKS[c['ok']]} {c['reason']}")
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    counts = Counter(verdict(r) for r in results)
    return (f"{len(results)} model checks: {counts[PASSED]} ok, {counts[FAILED]} failed, "
            f"{counts[NOT_APPLICABLE]} not applicable (no runtime for the format), "
            f"{counts[NOT_CHECKABLE]} not checkable here (a package the checks need is not installed)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.compat",
                                     description="Will exported models run on device profiles? Static shapes, "
                                                 "operators and precision, checked.")
    parser.add_argument("--profile", action="append", required=True,
                        help="profile name or .toml path (repeat for several)")
    parser.add_argument("--models", required=True, help="a model file, or a folder searched for *.onnx / *.xml")
    parser.add_argument("--json", default=None, help="also write all results to this JSON file")
    args = parser.parse_args(argv)
    target = Path(args.models)
    try:
        results = []
        for name in args.profile:
            profile = load_profile(name)
            results += check_all(profile, target) if target.is_dir() else [check_model(profile, target)]
    except (ProfileError, CompatError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_results(results))
    if args.json:
        write_json(args.json, results)
    print(summary(results))
    return 1 if any(verdict(r) == FAILED for r in results) else 0
