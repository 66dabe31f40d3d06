"""edge-ssl: the console entry point that dispatches to the `python -m` modules users run by hand."""
from __future__ import annotations

import tomllib

import pytest

from devices.cli import COMMANDS, main
from tests.conftest import ROOT


def test_the_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["edge-ssl"] == "devices.cli:main"


def test_help_lists_every_command_on_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("predict", "bench", "compat", "select", "report"):
        assert sum(line.split()[:1] == [name] for line in out.splitlines()) == 1, out


def test_no_command_or_an_unknown_one_exits_2_naming_it(capsys):
    assert main([]) == 2
    assert "usage: edge-ssl" in capsys.readouterr().err
    assert main(["frobnicate", "--x"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


# in one process a module may already be imported (pipeline.stages.report imports devices.select): runpy warns
@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package:RuntimeWarning")
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_runs_its_module_with_the_remaining_args(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_a_command_passes_on_its_modules_exit_status_and_message(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.onnx"), "x.png"]) == 2
    assert "missing.onnx" in capsys.readouterr().err
    assert main(["compat", "--models", str(tmp_path)]) == 2  # argparse: --profile is required
    assert "--profile" in capsys.readouterr().err
