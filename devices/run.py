"""Measure exported models on a device profile and write its latency report.

    python -m devices.run --profile cpu-x86 --models exports/ --out reports/devices/cpu-x86.json \
        [--md reports/devices/cpu-x86.md] [--task-of-model auto]

Models: every ``**/*.onnx`` (run with onnxruntime and the profile's provider)
and ``**/*.xml`` OpenVINO IR (run with OpenVINO on the profile's device) under
``--models``. Each is measured at each of the profile's batch sizes on random
float input shaped like the model's input (axis 0 is the batch axis; any other
dynamic axis is an error naming the model). A model its runtime cannot load
is skipped, named in the report and on stderr; the others are measured. A
runtime/provider/device that the profile names but this host lacks stops the
run with an error: nothing falls back to another provider. The profile alone
chooses the targets: there is no --device or --provider option.

As OpenVINO's benchmark_app: stderr says "k of N models" with the time left after each model,
and names each model by its full path (rows and skipped entries carry it as "path"; "model" stays
the path relative to --models). --out is rewritten after each model with status "partial", so a
run stopped with Ctrl-C keeps what it measured; the last write has status "measured". Models whose
metadata names a front end (audio frontend.onnx, text tokenizer.json) are also measured end to
end at batch 1, raw input -> preprocessing -> model (devices/end_to_end.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from devices.end_to_end import measure_end_to_end
from devices.latency import judged_stats, measure
from devices.metadata import MetadataError, decode_metadata, validate_metadata
from devices.model_files import find_models, runtime_of
from devices.profile import Profile, ProfileError, host_arch, load_profile, precision_of
from devices.report import MEASURED, PARTIAL, not_measured_report, write_device_report
from devices.runtimes import UnreadableModel, open_session
from devices.system_info import describe_host


class RuntimeUnavailable(RuntimeError):
    """The profile asks for a runtime, provider or device this host does not have."""


class ModelInputError(ValueError):
    """A model whose input cannot be built (dynamic non-batch axis, non-float input, ...)."""


def check_runtimes_available(profile: Profile) -> None:
    """Raise RuntimeUnavailable unless every runtime target the profile names exists on this host."""
    problems = []
    if profile.onnxruntime_provider is not None:
        try:
            import onnxruntime as ort
        except Exception as exc:
            problems.append(f"onnxruntime is not importable here ({exc})")
        else:
            available = ort.get_available_providers()
            if profile.onnxruntime_provider not in available:
                problems.append(
                    f"onnxruntime provider '{profile.onnxruntime_provider}' is not available on this host "
                    f"(available: {', '.join(available)})"
                )
    if profile.openvino_device is not None:
        try:
            import openvino as ov
        except Exception as exc:
            problems.append(f"openvino is not importable here ({exc})")
        else:
            devices = list(ov.Core().available_devices)
            if profile.openvino_device not in devices:
                problems.append(
                    f"OpenVINO device '{profile.openvino_device}' is not available on this host "
                    f"(available: {', '.join(devices) or 'none'})"
                )
    if problems:
        raise RuntimeUnavailable(
            f"device profile '{profile.name}' cannot run on this host: " + "; ".join(problems)
            + ". Nothing was measured (no fallback to another provider/device)."
        )


def input_shape_for(model: str, input_name: str, dims: list[int | None], batch: int) -> tuple[int, ...] | None:
    """The concrete input shape at ``batch``; None if the model's batch axis is fixed to another size.

    Raises ModelInputError if the input is a scalar or an axis other than 0 is dynamic.
    """
    if not dims:
        raise ModelInputError(f"{model}: input '{input_name}' is a scalar; expected a batch axis first")
    dynamic = [i for i, d in enumerate(dims) if d is None and i != 0]
    if dynamic:
        shown = "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"
        raise ModelInputError(
            f"{model}: input '{input_name}' has shape {shown} with dynamic axis {dynamic} besides the batch axis 0; "
            "cannot choose its size - export the model with static non-batch dimensions"
        )
    if dims[0] is not None and dims[0] != batch:
        return None
    return (batch, *dims[1:])


def _open(path: Path, profile: Profile):
    threads = profile.threads or None
    if runtime_of(path) == "onnxruntime":
        session = open_session(path, threads, provider=profile.onnxruntime_provider)
        if profile.onnxruntime_provider not in session.providers:
            raise RuntimeUnavailable(
                f"{path}: onnxruntime did not enable '{profile.onnxruntime_provider}' (got {session.providers})"
            )
        return session
    return open_session(path, threads, device=profile.openvino_device)


def _log(message: str) -> None:
    print(f"[devices.run] {message}", file=sys.stderr, flush=True)


def random_input(rng: np.random.Generator, shape, dtype, metadata: dict, where: str) -> np.ndarray:
    """Random model input: normal floats, or integers (token ids) in the metadata's `input_range` [low, high)."""
    if dtype is not None and dtype.kind == "f":
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    if dtype is not None and dtype.kind in "iu":
        value_range = metadata.get("input_range")
        if not value_range:
            raise ModelInputError(f"{where} is {dtype}; an integer input needs 'input_range' [low, high) "
                                  f"in the model's metadata")
        low, high = json.loads(value_range) if isinstance(value_range, str) else value_range
        return rng.integers(low, high, size=shape).astype(dtype)
    raise ModelInputError(f"{where} is {dtype}; only float and integer inputs are measured")


def _measure_one(path: Path, root: Path, profile: Profile, task_of_model: str, rng: np.random.Generator,
                 rows: list[dict], skipped: list[dict], log) -> None:
    """Measure one model at each of the profile's batch sizes, appending to `rows` and `skipped`."""
    rel, full = path.relative_to(root).as_posix(), os.path.abspath(path)
    names = {"model": rel, "path": full}
    runtime = runtime_of(path)
    if runtime not in profile.runtimes:
        skipped.append({**names, "batch": None, "reason": f"profile '{profile.name}' has no {runtime} runtime"})
        log(f"skip {full}: profile has no {runtime} runtime")
        return

    try:
        session = _open(path, profile)
        validate_metadata(path, decode_metadata(session.metadata), session.input_shape, session.input_dtype)
    except (UnreadableModel, MetadataError) as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        skipped.append({**names, "batch": None, "reason": reason})
        log(f"skipped: {full}: {reason}")
        return
    if session.input_count != 1:
        raise ModelInputError(f"{full}: has {session.input_count} inputs; only single-input models are measured")
    precision = precision_of(session.metadata, rel)
    if precision not in profile.precisions:
        skipped.append({**names, "batch": None,
                        "reason": f"precision '{precision}' is not in the profile's {list(profile.precisions)}"})
        log(f"skip {full}: precision {precision} not in profile")
        return
    task = session.metadata.get("task") or None
    if task_of_model != "auto":
        if task is not None and task != task_of_model:
            raise ValueError(f"{full}: metadata says task '{task}' but --task-of-model is '{task_of_model}'")
        task = task_of_model
    dtype = session.input_dtype

    for batch in profile.batch_sizes:
        shape = input_shape_for(full, session.input_name, session.input_shape, batch)
        if shape is None:
            reason = f"input batch axis is fixed to {session.input_shape[0]}"
            skipped.append({**names, "batch": batch, "reason": reason})
            log(f"skip {full} batch {batch}: {reason}")
            continue
        x = random_input(rng, shape, dtype, session.metadata, f"{full}: input '{session.input_name}'")
        bound = session.bind(x)
        stats = measure(lambda _: bound(), x, profile.warmup_iterations, profile.min_iterations,
                        profile.min_seconds)
        row = {**names, "runtime": runtime, "target": profile.runtimes[runtime], "precision": precision,
               "task": task, "batch": batch, "input_shape": list(shape), **judged_stats(stats, profile, task, batch)}
        log(f"{full} [{runtime} {precision}] batch {batch}: p50 {stats['p50_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms, "
            f"{stats['throughput']:.0f} samples/s ({stats['iterations']} runs)")
        if batch == 1:
            row.update(measure_end_to_end(session, path, profile))
            if "e2e_error" in row:
                log(f"{full} end to end with {row['e2e_front_end']}: not measured: {row['e2e_error']}")
            elif "e2e_front_end" in row:
                log(f"{full} end to end with {row['e2e_front_end']} batch 1: p50 {row['e2e_p50_ms']:.3f} ms, "
                    f"p99 {row['e2e_p99_ms']:.3f} ms ({row['e2e_iterations']} runs)")
        rows.append(row)
    del session


def _duration(seconds: float) -> str:
    if seconds < 0.5:
        return "under 1 s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def measure_models(
    profile: Profile,
    models_dir: str | Path,
    task_of_model: str = "auto",
    log=_log,
    on_model: Callable[[dict], None] | None = None,
) -> dict:
    """Measure every model under ``models_dir`` on ``profile``; returns the report dict.

    Logs "k of N models" with an estimate of the time left after each model. ``on_model``, if given, gets
    the report so far after each model, with status "partial" and "models_done" of "models_total" (what
    ``main`` writes to --out, so a run that is stopped keeps what it measured).
    """
    check_runtimes_available(profile)
    root = Path(models_dir)
    models = find_models(root, profile.name)
    if not models:
        raise FileNotFoundError(f"{root}: no *.onnx or *.xml models found")

    rows: list[dict] = []
    skipped: list[dict] = []
    rng = np.random.default_rng(0)
    total = len(models)
    log(f"measuring {total} models under {os.path.abspath(root)} on '{profile.name}'")
    start, host = time.monotonic(), {}
    for done, path in enumerate(models, 1):
        _measure_one(path, root, profile, task_of_model, rng, rows, skipped, log)
        per_model = (time.monotonic() - start) / done
        left = f", about {_duration(per_model * (total - done))} left" if done < total else ""
        log(f"{done} of {total} models ({os.path.abspath(path)}){left}")
        if on_model is not None:
            host = host or describe_host()  # once: it times a matmul
            on_model(_report(profile, root, rows, skipped, host, PARTIAL, models_done=done, models_total=total))

    if not rows:
        raise RuntimeError(
            f"no model under {root} could be measured on '{profile.name}': "
            + "; ".join(f"{s['path']}: {s['reason']}" for s in skipped)
        )
    return _report(profile, root, rows, skipped, host or describe_host(), MEASURED)


def _report(profile: Profile, root: Path, rows: list[dict], skipped: list[dict], host: dict, status: str,
            **counts) -> dict:
    return {
        "profile": profile.name,
        "status": status,
        **counts,
        "host": host,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": profile.to_dict(),
        "models_dir": str(root),
        "rows": list(rows),
        "skipped": list(skipped),
    }


def measure_here(profile: Profile, models_dir: str | Path, log=_log) -> dict:
    """measure_models where this host can be the profile's device; otherwise a not-measured report saying why."""
    if not profile.matches_host_arch():
        return not_measured_report(profile, f"this host is {host_arch()}, the profile's device is {profile.arch}")
    try:
        return measure_models(profile, models_dir, log=log)
    except RuntimeUnavailable as exc:
        return not_measured_report(profile, str(exc))


def _no_target_option(option: str, value: str, models_dir: str, profile: str) -> str:
    """Why --device or --provider is refused, naming the .onnx models it would not reach."""
    root = Path(models_dir)
    onnx = [p.relative_to(root).as_posix() for p in find_models(root) if runtime_of(p) == "onnxruntime"] \
        if root.is_dir() else []
    named = f" ({', '.join(onnx)})" if onnx else ""
    return (f"{option} '{value}' is not an option of devices.run: the profile '{profile}' chooses the targets. "
            f".onnx models{named} run on the provider of its [runtimes.onnxruntime], never on an OpenVINO device; "
            ".xml models on the device of its [runtimes.openvino]. For an NPU, use a profile such as intel-npu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="profile name (devices/profiles/NAME.toml) or path to a .toml")
    parser.add_argument("--models", required=True, help="folder searched for **/*.onnx and **/*.xml (OpenVINO IR)")
    parser.add_argument("--out", required=True, help="JSON report to write (atomically)")
    parser.add_argument("--md", default=None, help="also write the Markdown report here")
    parser.add_argument(
        "--task-of-model", default="auto",
        help="'auto': task from each model's metadata key 'task' (default budget if absent); "
             "or a task name applied to every model",
    )
    for option in ("--device", "--provider"):  # refused with a reason below, not silently ignored
        parser.add_argument(option, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for option, value in (("--device", args.device), ("--provider", args.provider)):
        if value is not None:
            parser.error(_no_target_option(option, value, args.models, args.profile))
    kept = {"models_done": 0, "models_total": None}

    def keep(partial: dict) -> None:  # after each model, so a stopped run leaves what it measured
        write_device_report(partial, args.out, None)
        kept.update(models_done=partial["models_done"], models_total=partial["models_total"])

    def what_was_kept() -> str:
        if not kept["models_done"]:
            return f"no model was finished, {args.out} was not written"
        return (f"{args.out} keeps the {kept['models_done']} of {kept['models_total']} models measured "
                f"(status '{PARTIAL}')")

    try:
        profile = load_profile(args.profile)
        report = measure_models(profile, args.models, args.task_of_model, on_model=keep)
        write_device_report(report, args.out, args.md)
    except KeyboardInterrupt:
        print(f"interrupted: {what_was_kept()}", file=sys.stderr)
        return 130
    except (ProfileError, RuntimeUnavailable, ModelInputError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}" + (f" ({what_was_kept()})" if kept["models_done"] else ""), file=sys.stderr)
        return 2
    _log(f"wrote {args.out}" + (f" and {args.md}" if args.md else "") + f" ({len(report['rows'])} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
