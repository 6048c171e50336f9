"""The Signal record: its fallback confidence, its persisted columns and the per-strategy summary."""

from __future__ import annotations

import sqlite3

import orjson

from engine import store
from engine.events import OrderType
from engine.records import SIGNAL_DETAIL, TABLES
from engine.risk import RiskManager
from engine.store.schema import MIGRATIONS
from engine.store.signals import list_signals, strategy_summary
from ml.scoring import ScoredSignal
from strategies.base import FALLBACK, Signal


def make_signal(strategy: str = "sweep_reversal", seq: int = 1, side: int = -1, **kw) -> Signal:
    fields = dict(signal_id=f"0:{seq}:{strategy}", instrument_id=0, ts_recv=1_000 + seq, seq=seq, strategy=strategy,
                  side=side, entry_type=OrderType.MARKET, entry_price=100, stop=104, targets=(96, 92),
                  time_stop_ns=300_000_000_000, score=0.8, confluence=0.5, structural=2, regime="RANGE_LOW",
                  invalidation="new extreme beyond the sweep", detection_ids=("0:1:SweepDetection:1:100",),
                  evidence={"v_trap_share": 0.4})
    fields.update(kw)
    return Signal(**fields)


def test_confidence_falls_back_to_score_times_confluence():
    """Without a given confidence a signal's confidence is S_raw * C (clipped to [0, 1]) and its mode says so."""
    signal = make_signal()
    assert signal.confidence == 0.4 and signal.confidence_mode == FALLBACK
    assert make_signal(confluence=-0.3).confidence == 0.0
    assert make_signal(confidence=0.7, confidence_mode="model-1").confidence == 0.7


def test_signal_rows_carry_every_target_c_k_regime_confidence_and_causes(tmp_path):
    """A signal's row holds all targets, C, K, the regime, the confidence and mode, the detection ids and evidence."""
    risk = RiskManager([], order_size=1)
    risk.apply([ScoredSignal(make_signal(), 0.4, "untrained"),
                ScoredSignal(make_signal("vacuum_entry", 2, 1, stop=96, targets=(110,), score=0.5, confluence=1.0),
                             0.5, "untrained")])
    records = risk.take_records()
    signals = [r for r in records if r[0] == "signals"]
    assert len(signals) == 2 and all(len(row) == len(TABLES["signals"]) for _, row in signals)
    conn = store.connect(tmp_path / "s.db")
    store.write_records(conn, "r1", signals)
    rows = list_signals(conn, run_id="r1")
    first = rows[0]
    assert orjson.loads(first["targets"]) == [96, 92] and first["confluence"] == 0.5 and first["structural"] == 2
    assert first["regime"] == "RANGE_LOW" and first["confidence"] == 0.4 and first["confidence_mode"] == FALLBACK
    assert orjson.loads(first["detection_ids"]) == ["0:1:SweepDetection:1:100"]
    assert orjson.loads(first["evidence"]) == {"v_trap_share": 0.4}
    assert [r["strategy"] for r in list_signals(conn, strategy="vacuum_entry")] == ["vacuum_entry"]
    assert [r["ts_recv"] for r in list_signals(conn, since_ns=1_002)] == [1_002]
    summary = strategy_summary(conn, "r1")
    assert summary == {
        "sweep_reversal": {"signals": 1, "accepted": 1, "mean_confidence": 0.4, "long": 0, "short": 1,
                           "confidence_mode": FALLBACK},
        "vacuum_entry": {"signals": 1, "accepted": 1, "mean_confidence": 0.5, "long": 1, "short": 0,
                         "confidence_mode": FALLBACK},
    }


def test_a_version_3_database_gains_the_signal_columns_and_keeps_its_rows(tmp_path):
    """Migration 4 adds the signal detail columns to a database written before them; old rows read as NULL."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for version, migration in enumerate(MIGRATIONS[:3], start=1):
        for statement in migration():
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={version}")
    conn.execute("INSERT INTO signals (run_id, signal_id, strategy) VALUES ('old', 'x', 'probe')")
    conn.commit()
    conn.close()
    conn = store.connect(path)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(signals)")]
    assert columns[-len(SIGNAL_DETAIL):] == list(SIGNAL_DETAIL)
    assert conn.execute("SELECT signal_id, targets, confidence FROM signals").fetchall() == [("x", None, None)]
