"""The daemon's life cycle with real processes and a real SQLite file: SIGTERM drains, commits and exits 0;
SIGHUP reloads validated risk limits and keeps the old ones on a bad file; a restart resumes the
checkpointed state; retention prunes old samples."""

from __future__ import annotations

import signal
import sqlite3

import orjson

from engine import store
from engine.app.daemon.service import prune
from tests.engine.app.daemon.helpers import DaemonProcess, wait_until


def test_sigterm_drains_commits_and_exits_zero(tmp_path):
    """SIGTERM stops the feed, the run is stored 'stopped' with every event it counted, and the exit code is 0."""
    process = DaemonProcess(tmp_path, "--symbol", "AAPL", "--set", "daemon.speed=50").start()
    process.wait_ready()
    seen = wait_until(lambda: process.get("/api/trades/AAPL?limit=10000")[1], "a trade")
    assert process.stop() == 0
    conn = sqlite3.connect(process.db)
    status, reason, events, summary = conn.execute("SELECT status, stop_reason, events, summary FROM runs").fetchone()
    assert (status, reason) == ("stopped", "SIGTERM: stopped, drained and committed")
    summary = orjson.loads(summary)
    assert events == summary["events"] > 0
    stored = {row[0] for row in conn.execute("SELECT seq FROM trades")}
    assert {t["seq"] for t in seen} <= stored  # every trade handed to the writer before the signal was committed
    # the end-of-stream rows (written by each stage's flush, after the drain) were committed
    flushed = {row[0] for row in conn.execute("SELECT DISTINCT stage FROM integrity")}
    assert {"book", "signals"} <= flushed
    assert [line["event"] for line in process.lines()][-3:] == ["stop_requested", "session_finished", "daemon_stopped"]


def _config(path, max_position: int, threshold: float | None = None) -> None:
    strategies = "" if threshold is None else f"[strategies.queue_imbalance]\nthreshold = {threshold}\n"
    path.write_text(f"[risk]\nmax_position = {max_position}\n{strategies}")


def test_sighup_applies_a_valid_file_and_keeps_the_old_limits_on_a_bad_one(tmp_path):
    """SIGHUP re-reads -c: valid limits and strategy parameters apply to the running strategies; an invalid
    file is rejected with one log line, limits and parameters unchanged."""
    config = tmp_path / "chimera.toml"
    _config(config, 700)
    process = DaemonProcess(tmp_path, "--symbol", "AAPL", "--set", "daemon.speed=20", config=config).start()
    try:
        process.wait_ready()
        control = process.get("/api/control")[1]
        assert control["risk"]["max_position"] == 700
        assert control["strategy_params"]["queue_imbalance"]["threshold"] == 0.8
        _config(config, 250, threshold=0.65)
        process.signal(signal.SIGHUP)
        applied = process.wait_log("reload_applied")
        assert applied["max_position"] == 250 and applied["strategies_retuned"] == ["queue_imbalance"]
        control = process.get("/api/control")[1]
        assert control["risk"]["max_position"] == 250
        assert control["strategy_params"]["queue_imbalance"]["threshold"] == 0.65
        config.write_text("[risk]\nmax_position = -5\n")
        process.signal(signal.SIGHUP)
        rejected = process.wait_log("reload_rejected")
        assert "max_position" in rejected["error"] and ">= 1" in rejected["error"]
        config.write_text("[strategies.queue_imbalance]\nthreshold = 1.5\n")
        process.signal(signal.SIGHUP)
        assert "threshold" in process.wait_log("reload_rejected", count=2)["error"]
        config.write_text("[risk\n")
        process.signal(signal.SIGHUP)
        assert "chimera.toml" in process.wait_log("reload_rejected", count=3)["error"]
        control = process.get("/api/control")[1]
        assert control["risk"]["max_position"] == 250
        assert control["strategy_params"]["queue_imbalance"]["threshold"] == 0.65
        assert process.get("/healthz")[0] == 200
    finally:
        assert process.stop() == 0


def test_a_restarted_daemon_resumes_positions_kill_switch_pauses_and_limits(tmp_path):
    """State checkpointed by one daemon (cash and realized P&L, kill switch, pauses, limits) is what the next
    one starts with (a session ends flat: the execution stage flattens at end of stream)."""
    first = DaemonProcess(tmp_path, "--symbol", "AAPL,TSLA", "--set", "daemon.speed=100").start()
    try:
        wait_until(lambda: any(p["qty"] for p in first.get("/api/positions")[1]["positions"]), "an open position")
        strategy = first.get("/api/control")[1]["strategies"][0]
        assert first.post("/api/control/kill-switch", {"reason": "restart drill"})[0] == 200
        assert first.post(f"/api/control/strategies/{strategy}/pause")[0] == 200
        assert first.post("/api/control/risk", {"max_position": 400})[0] == 200
    finally:
        assert first.stop() == 0
    saved = orjson.loads(sqlite3.connect(first.db).execute(
        "SELECT state FROM daemon_state WHERE name = 'controls'").fetchone()[0])
    assert any(p["cash"] for p in saved["positions"].values())
    second = DaemonProcess(tmp_path, "--symbol", "AAPL,TSLA", "--set", "daemon.speed=100", db=first.db).start()
    try:
        second.wait_ready()
        control = second.get("/api/control")[1]
        assert control["kill_switch"] == {"engaged": True, "reason": "restart drill"}
        assert control["paused"] == [strategy]
        assert control["risk"]["max_position"] == 400
        positions = {p["symbol"]: p for p in second.get("/api/positions")[1]["positions"]}
        for symbol, pos in saved["positions"].items():
            assert (positions[symbol]["qty"], positions[symbol]["cash"]) == (pos["qty"], pos["cash"])
        runs = second.get("/api/runs")[1]
        assert [(r["status"], r["seed"]) for r in runs] == [("stopped", 7), ("running", 8)]
    finally:
        assert second.stop() == 0


def test_retention_prunes_old_samples_and_vacuums(tmp_path):
    """Samples older than the cutoff (this session) and those of daemon sessions that ended long ago are
    deleted; newer ones and other commands' rows stay; freed pages are returned by incremental vacuum."""
    path = tmp_path / "r.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.close()
    conn = store.connect(path)
    for run_id, command, finished in (("now", "daemon", None), ("old", "daemon", "2000-01-01T00:00:00.000+00:00"),
                                      ("batch", "run", "2000-01-01T00:00:00.000+00:00")):
        conn.execute("INSERT INTO runs (run_id, command, status, finished_at) VALUES (?, ?, 'x', ?)",
                     (run_id, command, finished))
    rows = [(run_id, ts, "x" * 2000) for run_id in ("now", "old", "batch") for ts in range(100)]
    conn.executemany("INSERT INTO feature_samples (run_id, instrument_id, seq, ts_recv, state, features) "
                     "VALUES (?, 0, 0, ?, 0, ?)", rows)
    conn.commit()
    freed = prune(conn, "now", 60, retention_s=3600.0)
    left = conn.execute("SELECT run_id, MIN(ts_recv), COUNT(*) FROM feature_samples GROUP BY run_id "
                        "ORDER BY run_id").fetchall()
    assert left == [("batch", 0, 100), ("now", 60, 40)]
    assert freed > 0 and conn.execute("PRAGMA freelist_count").fetchone()[0] == 0


def test_tapes_replay_in_a_loop_one_run_per_pass(tmp_path):
    """With --tape the daemon replays the file, stores the pass as a completed run, and starts the next pass."""
    from engine.config import Config
    from feeds.simulator import MarketSimulator
    from feeds.tape import record

    tape = tmp_path / "day.jsonl"
    count = record(MarketSimulator(["AAPL"], Config(), 3, 20.0), tape, source="test")
    process = DaemonProcess(tmp_path, "--tape", str(tape), "--set", "daemon.speed=max").start()
    try:
        finished = process.wait_log("session_finished", count=2)
        assert finished["status"] == "completed"
        runs = process.get("/api/runs")[1]
        done = [r for r in runs if r["status"] == "completed"]
        assert len(done) >= 2 and {r["events"] for r in done} == {count}
        assert {r["source"] for r in runs} == {str(tape)}
    finally:
        assert process.stop() == 0


def test_a_missing_tape_is_refused_before_anything_runs(tmp_path):
    """--tape naming a missing file exits 2 with one line naming it."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "engine.app.cli", "daemon", "--port", "0", "--db",
                             str(tmp_path / "d.db"), "--tape", str(tmp_path / "nope.jsonl")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("chimera: error: ") and "nope.jsonl" in result.stderr
    assert len(result.stderr.splitlines()) == 1
