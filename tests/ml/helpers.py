"""Shared set-ups of the ML tests."""

from __future__ import annotations

from pathlib import Path

from engine import store
from engine.store import models as rows
from ml.registry import save_model


def champion_db(tmp_path: Path, model, version: str, kind: str, training: dict | None = None) -> tuple[Path, Path]:
    """A database whose ``kind`` champion is ``model``, saved and registered as the train commands do
    (a simulator-trained model in shadow mode); ``(db, model file)``."""
    db = tmp_path / f"{version}.db"
    path = (tmp_path / "models" / f"{version}.skops").resolve()
    sha = save_model(model, path)
    conn = store.connect(db)
    try:
        rows.register_model(conn, version=version, kind=kind, path=str(path), sha256=sha,
                            training={"source": "simulator", **(training or {})}, metrics={}, mode="shadow")
        rows.promote_model(conn, version)
    finally:
        conn.close()
    return db, path


def planted_classifier():
    """A calibrated signal classifier whose probability rises with S_raw (planted on synthetic rows)."""
    import numpy as np

    from ml import signal_model as sm

    rng = np.random.default_rng(0)
    n = 400
    X = np.full((n, len(sm.FEATURES)), np.nan)
    s = rng.random(n)
    X[:, sm.FEATURES.index("s_raw")] = s
    y = (rng.random(n) < 0.2 + 0.6 * s).astype(np.int64)
    t0 = np.arange(n, dtype=float)
    e = np.zeros(n)
    data = sm.SignalSet(X, y, t0, t0, np.zeros(n, np.int64), e, e, np.array(["x"] * n), np.array([""] * n),
                        np.array(["target"] * n))
    return sm.fit_calibrated(data, np.arange(n), np.ones(n), 20, 2)
