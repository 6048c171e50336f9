"""Start-up stays light: the command line does not load the model libraries until a model is used.

scikit-learn, skops and SciPy take about 1.5-2 s to import; the command line and a run without models
used to load them for every command (through the model registry's import). Checked in a fresh interpreter
by the modules it holds, not by timing."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sklearn", "skops", "scipy", "optuna", "ray", "river", "pyarrow")


def _loaded_after(code: str, cwd) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_command_line_loads_no_model_library(tmp_path):
    assert _loaded_after("import engine.app.cli", tmp_path) == []


def test_a_run_without_models_loads_no_model_library(tmp_path):
    run = ("from engine.app.cli import main\n"
           "assert main(['run', '--symbol', 'AAPL', '--duration', '2', '--speed', 'max', '--no-ml',"
           " '--db', 'run.db', '--no-progress']) == 0")
    assert _loaded_after(run, tmp_path) == []
