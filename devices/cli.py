"""edge-ssl: one command for what a user runs by hand, each a thin wrapper around a `python -m` module.

    edge-ssl predict MODEL INPUT...                  python -m devices.predict MODEL INPUT...
    edge-ssl bench --profile P --models D --out F    python -m devices.run ...
    edge-ssl compat --profile P --models D           python -m devices.compat ...
    edge-ssl select --profile P --task T             python -m devices.select ...
    edge-ssl report                                  python -m pipeline.stages.report

The modules are run by name, as `python -m` runs them, and only when asked for: the device-side commands
need numpy and a runtime only, `report` needs the pipeline's packages.
"""
from __future__ import annotations

import runpy
import sys
from importlib.util import find_spec

# command -> (module run as `python -m`, one line of help)
COMMANDS = {
    "predict": ("devices.predict", "run an exported model on images, clips, sounds or texts, as an app does"),
    "bench": ("devices.run", "measure the latency of exported models on a device profile"),
    "compat": ("devices.compat", "check whether exported models will run on device profiles"),
    "select": ("devices.select", "pick the variant to ship on a device: the most accurate within its latency budget"),
    "report": ("pipeline.stages.report", "write the reports from the measured metrics (needs the pipeline's packages)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: edge-ssl COMMAND [ARGS...]   (edge-ssl COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def _missing(module: str) -> str | None:
    """Why `module` cannot run in this installation, or None when it can be found."""
    try:
        if find_spec(module) is not None:
            return None
    except ModuleNotFoundError as exc:  # a parent package is missing
        return f"{exc.name} is not installed"
    return f"{module} is not part of this installation"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"edge-ssl: unknown command '{command}' (expected one of: {', '.join(COMMANDS)})\n\n{usage()}",
              file=sys.stderr)
        return 2
    module = COMMANDS[command][0]
    why = _missing(module)
    if why:
        print(f"edge-ssl {command}: cannot run {module}: {why}", file=sys.stderr)
        return 2
    saved = sys.argv
    sys.argv = [module, *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except ModuleNotFoundError as exc:
        print(f"edge-ssl {command}: {module} needs {exc.name}, which is not installed here ({exc})", file=sys.stderr)
        return 2
    except SystemExit as exc:  # the module's own exit status (argparse errors, sys.exit(main()))
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # sys.exit("message"), as python would print it
        return 1
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
