"""Every stage answers --help with its usage and does nothing else."""
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

STAGES = sorted(p.stem for p in (ROOT / "pipeline" / "stages").glob("*.py") if p.stem not in ("__init__", "common"))


def test_every_stage_prints_help_without_side_effects(tmp_path):
    script = textwrap.dedent(f'''
        import contextlib, io, runpy, sys
        for stage in {STAGES!r}:
            sys.argv = [stage, "--help"]
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    runpy.run_module("pipeline.stages." + stage, run_name="__main__")
            except SystemExit as exc:
                assert exc.code == 0, (stage, exc.code)
            else:
                raise AssertionError(stage + " ran instead of printing help")
            assert out.getvalue().startswith("usage:"), (stage, out.getvalue()[:200])
    ''')
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # no params read, nothing written
