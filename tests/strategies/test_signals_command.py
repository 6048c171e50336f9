"""``chimera signals``: stored signals listed by run, strategy and time, as a table or JSON; bad input refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from engine.app.commands.signals import parse_since
from engine.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def chimera(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """A database holding one simulated run with signals of several strategies."""
    db = tmp_path_factory.mktemp("signals") / "run.db"
    result = chimera("run", "--scenario", "stop_run_reversal", "--symbol", "TSLA,AAPL", "--duration", "150",
                     "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout.strip().splitlines()[-1])
    return db, summary


def test_signals_lists_a_runs_signals_as_json_with_the_summary_counts(database):
    """--run --json lists every signal of the run, in time order, with the per-strategy counts of the summary."""
    db, summary = database
    result = chimera("signals", "--db", str(db), "--run", summary["run_id"], "--json")
    assert result.returncode == 0, result.stderr
    listed = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert listed["count"] == summary["signals"] > 0
    assert listed["strategies"] == summary["strategies"]
    times = [s["ts_recv"] for s in listed["signals"]]
    assert times == sorted(times)
    first = listed["signals"][0]
    assert first["symbol"] in ("TSLA", "AAPL") and first["confidence_mode"] == "fallback_sraw_c"
    assert isinstance(orjson.loads(first["targets"]), list)


def test_signals_filters_by_strategy_and_time(database):
    """--strategy keeps one strategy's signals; --since drops those before it."""
    db, summary = database
    strategy = next(iter(summary["strategies"]))
    result = chimera("signals", "--db", str(db), "--strategy", strategy, "--json")
    rows = orjson.loads(result.stdout.strip().splitlines()[-1])["signals"]
    assert rows and {r["strategy"] for r in rows} == {strategy}
    everything = orjson.loads(chimera("signals", "--db", str(db), "--json").stdout.strip().splitlines()[-1])["signals"]
    cut = everything[len(everything) // 2]["ts_recv"]
    later = orjson.loads(chimera("signals", "--db", str(db), "--since", str(cut), "--json").stdout.splitlines()[-1])
    assert [r["signal_id"] for r in later["signals"]] == [r["signal_id"] for r in everything if r["ts_recv"] >= cut]


def test_signals_prints_a_table(database):
    """Without --json the signals and the per-strategy table are printed."""
    db, summary = database
    result = chimera("signals", "--db", str(db), "--run", summary["run_id"])
    assert result.returncode == 0 and "Signals in" in result.stdout and "Signals per strategy" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "--since yesterday: expected an ISO 8601 time"),
    (["--run", "nope"], "--run nope: no such run"),
])
def test_signals_refuses_bad_input_in_one_line(database, args, message):
    """A bad --since or an unknown --run is one error line and exit code 2."""
    db, _ = database
    result = chimera("signals", "--db", str(db), *args)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_signals_refuses_a_missing_database(tmp_path):
    """--db naming no file is refused without creating it."""
    result = chimera("signals", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2 and "no such database file" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_since_reads_iso_times_as_utc_and_nanoseconds_as_they_are():
    """parse_since: naive ISO times are UTC, offsets are honoured, digits are nanoseconds."""
    assert parse_since("2024-06-21T13:30:00") == 1_718_976_600_000_000_000
    assert parse_since("2024-06-21T09:30:00-04:00") == 1_718_976_600_000_000_000
    assert parse_since("1718976600000000001") == 1_718_976_600_000_000_001
    with pytest.raises(UsageError):
        parse_since("13:30")
