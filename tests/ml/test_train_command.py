"""``chimera train regime``: simulated training sessions, unseen evaluation seeds, a registered model."""

from __future__ import annotations

import orjson

from engine import store
from engine.app.cli import main
from engine.store import models as rows
from ml.registry import load_model


def test_train_regime_reports_on_unseen_seeds_and_registers_the_model(tmp_path, capsys):
    db = tmp_path / "c.db"
    code = main(["train", "regime", "--sessions", "2", "--test-sessions", "1", "--minutes", "8", "--seed", "3",
                 "--folds", "2", "--profile", "small_tick", "--db", str(db), "--promote", "--json",
                 "--set", "simulator.regime_dwell_scale=0.02"])
    assert code == 0
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["train_seeds"] == [3, 4] and out["test_seeds"] == [5]
    assert set(out) >= {"balanced_accuracy", "macro_f1", "recall", "confusion", "cv"}
    confusion = out["confusion"]
    assert len(confusion) == 6 and all(len(r) == 6 for r in confusion)
    assert sum(map(sum, confusion)) == out["n"] > 0
    # balanced accuracy is the mean of the per-class recalls of the classes present
    assert abs(out["balanced_accuracy"] - sum(out["recall"].values()) / len(out["recall"])) < 1e-12
    conn = store.connect(db)
    try:
        row = rows.champion(conn, "regime")
    finally:
        conn.close()
    assert row is not None and row.version == out["model"]["version"] and row.mode == "shadow"
    assert row.training["test_seeds"] == [5] and row.metrics["balanced_accuracy"] == out["balanced_accuracy"]
    model = load_model(row.path, row.sha256)
    assert list(model.classes_) == sorted(model.classes_)


def test_train_regime_refuses_one_fold(tmp_path, capsys):
    assert main(["train", "regime", "--folds", "1", "--db", str(tmp_path / "c.db")]) == 2
    assert "--folds" in capsys.readouterr().err
