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
