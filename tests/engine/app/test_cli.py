"""The chimera command line, run as a real process where signals or exit codes matter."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.app.cli import main

ROOT = Path(__file__).resolve().parents[3]


def chimera(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_every_command_has_help():
    """--help works for every command and exits 0."""
    for command in ("run", "replay", "record", "import-lobster", "demo", "sim-check", "calibrate"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0


def test_test_command_passes_arguments_to_pytest(capfd):
    """`chimera test -k NAME --collect-only` hands both flags to pytest (the README's `chimera test -k book`)."""
    assert main(["test", "-k", "test_l3_adds_build_levels_and_fifo_queues", "--collect-only", "-q"]) == 0
    out = capfd.readouterr().out
    assert "tests/engine/test_book.py" in out and "tests/feeds" not in out


def test_run_json_summary_and_summary_file(tmp_path, capsys):
    """run --json prints one JSON object on the last line; --summary-json writes the same figures."""
    db, summary_path = tmp_path / "r.db", tmp_path / "s.json"
    code = main(["run", "--symbol", "AAPL,TSLA", "--duration", "20", "--feed", "zero_intelligence",
                 "--speed", "max", "--db", str(db), "--json", "--summary-json", str(summary_path)])
    assert code == 0
    summary = last_json(capsys.readouterr().out)
    assert summary == json.loads(summary_path.read_text())
    assert summary["instruments"] == ["AAPL", "TSLA"] and summary["events"] > 1000
    assert set(summary) >= {"events", "wall_seconds", "events_per_s", "stages", "signals", "db_rows", "errors"}
    assert summary["db_rows"]["trades"] == sum(v["trades"] for v in summary["per_instrument"].values()) > 0
    with sqlite3.connect(db) as conn:
        status, stored = conn.execute("SELECT status, summary FROM runs WHERE run_id = ?",
                                      (summary["run_id"],)).fetchone()
    assert status == "completed" and json.loads(stored)["events"] == summary["events"]


def test_bad_arguments_give_one_line_and_exit_2():
    """Unknown options, bad values and unknown config keys: one line on stderr, exit code 2."""
    for args in (["run", "--bogus"], ["run", "--speed", "fast"], ["run", "--set", "risk.max_postion=3"],
                 ["replay", "/nonexistent/tape.jsonl.gz"], ["run", "--config", "/nonexistent.toml"]):
        result = chimera(*args)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "error" in lines[0], (args, result.stderr)
    assert "max_postion" in chimera("run", "--set", "risk.max_postion=3").stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_gracefully_with_summary_and_exit_0(tmp_path, sig):
    """SIGINT or SIGTERM during a paced simulator run: feed stops, queues drain, summary printed, exit 0,
    and the run is stored as `stopped` with the signal named."""
    db = tmp_path / "sig.db"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "run", "--symbol", "AAPL,NVDA,TSLA", "--duration", "3600",
         "--speed", "1", "--db", str(db), "--json", "--log-level", "info",
         "--log-json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
    )
    for line in proc.stderr:  # wait until the run has started
        if "run_started" in line:
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = last_json(out)
    assert summary["status"] == "stopped" and summary["stopped_by"] == "stop_request"
    with sqlite3.connect(db) as conn:
        status, reason = conn.execute("SELECT status, stop_reason FROM runs").fetchone()
    assert status == "stopped" and reason.startswith(sig.name)


def test_python_main_is_the_same_cli():
    """python main.py prints the same usage as the chimera console script."""
    result = chimera("--help")
    assert result.returncode == 0 and "import-lobster" in result.stdout


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "chimera").exists(), reason="start.sh runs the CLI of .venv")
def test_start_sh_runs_the_cli():
    """./start.sh passes its arguments to the CLI of .venv (and runs the demo without any)."""
    result = subprocess.run(["bash", str(ROOT / "start.sh"), "replay", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "usage: chimera replay" in result.stdout


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    """The data directory of this module's demos: its model set is trained once and shared."""
    return tmp_path_factory.mktemp("xdg")


def test_no_command_runs_the_demo(tmp_path, monkeypatch, capsys, demo_home):
    """`python main.py` with no command runs the demo, as ./start.sh does, into chimera-demo.db."""
    monkeypatch.setenv("XDG_DATA_HOME", str(demo_home))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert "Run demo-" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "chimera-demo.db") as conn:
        assert conn.execute("SELECT command, status FROM runs").fetchall() == [("demo", "completed")]
    conn.close()


def test_demo_trains_its_model_set_once_and_runs_with_it(tmp_path, monkeypatch, capsys, demo_home):
    """The demo's small model set is trained on first use, cached under the data directory, registered
    as the champions of each demo database, live on simulated data and shadow on recorded data."""
    from engine import store
    from engine.app.commands.demo_models import cache_key, ensure_demo_models
    from engine.config import load_config, with_values
    from engine.pipeline.models import load_run_models

    monkeypatch.setenv("XDG_DATA_HOME", str(demo_home))
    config = load_config(None)
    first = ensure_demo_models(config, str(tmp_path / "a.db"))  # trains unless the demo above already did
    cache = Path(first["cache"])
    assert cache.parent == demo_home / "chimera" / "models"
    manifest = cache / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    again = ensure_demo_models(config, str(tmp_path / "b.db"))
    assert again["trained"] is False and again["models"] == first["models"]
    assert manifest.stat().st_mtime_ns == stamp  # nothing retrained or rewritten
    kinds = {v.split("-")[1] for v in first["models"]}
    assert "regime" in kinds and kinds | set(first["left_out"]) == {"regime", "signal", "target"}
    conn = store.connect(tmp_path / "b.db")
    try:
        recorded = load_run_models(conn, no_ml=False, real_data=True)  # SHA-256 checked, trusted types only
    finally:
        conn.close()
    assert {m["mode"] for m in recorded.describe()} == {"shadow"}
    assert main(["demo", "--db", str(tmp_path / "c.db"), "--duration", "60", "--json"]) == 0
    summary = last_json(capsys.readouterr().out)
    assert sorted(m["version"] for m in summary["models"]) == sorted(first["models"])
    assert {m["mode"] for m in summary["models"]} == {"live"}
    assert main(["demo", "--db", str(tmp_path / "d.db"), "--duration", "60", "--json", "--no-ml"]) == 0
    assert last_json(capsys.readouterr().out)["models"] == []
    assert cache_key(with_values(config, {"ml.target_quantile": 0.6})) != cache_key(config)
