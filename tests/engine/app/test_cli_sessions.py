"""End-to-end sessions through the CLI: simulator runs, seeded tapes, truth routing, LOBSTER replay."""

from __future__ import annotations

import gzip
import json
import sqlite3

import pytest

from engine import store
from engine.app.cli import main
from engine.records import TABLES
from feeds.lobster import lobster_available, locate_sample


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_run_uses_the_simulator_persists_and_exits_cleanly(tmp_path, capsys):
    """`chimera run --symbol AAPL,NVDA,TSLA --duration 60 --speed max` runs the market simulator end to end."""
    db = tmp_path / "run.db"
    code = main(["run", "--symbol", "AAPL,NVDA,TSLA", "--duration", "60", "--speed", "max", "--db", str(db),
                 "--json"])
    summary = last_json(capsys)
    assert code == 0 and summary["status"] == "completed" and summary["source"] == "MarketSimulator"
    assert set(summary["per_instrument"]) == {"AAPL", "NVDA", "TSLA"}
    assert all(row["events"] > 0 and row["trades"] > 0 for row in summary["per_instrument"].values())
    assert summary["truth_labels"] > 0 and summary["db_rows"]["truth_labels"] == summary["truth_labels"]
    assert 59 <= summary["event_time_seconds"] <= 60
    assert summary["errors"]["integrity"] == {}  # no gaps, crossings or unknown orders in simulated L3


def test_one_seed_records_byte_identical_tapes(tmp_path, capsys):
    """Two recordings with the same seed are the same bytes; another seed differs."""
    paths = [tmp_path / f"{name}.jsonl.gz" for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("5", "5", "6"), strict=True):
        assert main(["record", "--symbol", "AAPL,TSLA", "--duration", "30", "--seed", seed, "--out", str(path)]) == 0
    capsys.readouterr()
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def _rows(db, run_id):
    conn = store.connect(db)
    try:
        return {table: store.fetch_rows(conn, table, run_id) for table in TABLES}
    finally:
        conn.close()


def test_replayed_truth_reaches_only_the_truth_table(tmp_path, capsys):
    """Replaying a simulator tape stores its truth labels, and removing them changes no other row."""
    tape = tmp_path / "sim.jsonl.gz"
    assert main(["record", "--symbol", "AAPL,NVDA", "--duration", "120", "--out", str(tape)]) == 0
    lines = gzip.decompress(tape.read_bytes()).splitlines(keepends=True)
    truth_lines = [line for line in lines[1:] if line.startswith(b'["truth"')]
    assert truth_lines
    stripped = tmp_path / "no_truth.jsonl.gz"
    stripped.write_bytes(gzip.compress(b"".join(line for line in lines if not line.startswith(b'["truth"'))))
    summaries = []
    for path in (tape, stripped):
        db = tmp_path / f"{path.stem}.db"
        assert main(["replay", str(path), "--db", str(db), "--json", "--set", "store.sample_interval_ms=2000"]) == 0
        summaries.append((db, last_json(capsys)))
    (db_a, with_truth), (db_b, without) = summaries
    assert with_truth["truth_labels"] == len(truth_lines) and without["truth_labels"] == 0
    rows_a, rows_b = _rows(db_a, with_truth["run_id"]), _rows(db_b, without["run_id"])
    assert len(rows_a["truth_labels"]) == len(truth_lines)
    for table in TABLES:
        if table != "truth_labels":
            assert rows_a[table] == rows_b[table], table
    assert rows_a["signals"] or rows_a["feature_samples"]


NO_DATA = "LOBSTER sample data not found under $CHIMERA_DATA or ../shared/data"


@pytest.mark.skipif(not lobster_available(5), reason=NO_DATA)
def test_replay_of_the_amzn_level5_message_file_counts_every_message(tmp_path, capsys):
    """`chimera replay` of the AMZN level-5 message file processes 155,935 messages with no integrity alarm."""
    message, _ = locate_sample(5)
    summary_path = tmp_path / "summary.json"
    code = main(["replay", str(message), "--db", str(tmp_path / "amzn.db"), "--summary-json", str(summary_path)])
    capsys.readouterr()
    summary = json.loads(summary_path.read_text())
    assert code == 0 and summary["messages"] == 155_935
    assert summary["feed"]["unexplained_mismatches"] == 0
    integrity = summary["errors"]["integrity"]["AMZN"]
    assert "book.crossed" not in integrity and "book.gaps" not in integrity
    with sqlite3.connect(tmp_path / "amzn.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM trades").fetchone()[0] > 10_000


def test_run_plants_a_scenario_preset(tmp_path, capsys):
    """--scenario iceberg_defense runs the preset's symbol and stores its ICEBERG truth label."""
    db = tmp_path / "scenario.db"
    assert main(["run", "--scenario", "iceberg_defense", "--db", str(db), "--json"]) == 0
    summary = last_json(capsys)
    assert summary["instruments"] == ["TSLA"]
    with sqlite3.connect(db) as conn:
        kinds = {row[0] for row in conn.execute("SELECT kind FROM truth_labels WHERE run_id = ?",
                                                  (summary["run_id"],))}
    assert 2 in kinds  # TruthKind.ICEBERG
