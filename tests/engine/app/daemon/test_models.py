"""The daemon loads the registry's champions as `chimera run` does: verified before it binds, named in
/metrics and in each session's summary; a modified champion stops it in one line (exit 2); --no-ml loads none;
a restarted daemon resumes the versions it ran (checkpointed), --champions takes the registry's champions."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from engine import store
from engine.events import Regime
from engine.store import models as rows
from ml import regime
from ml.registry import save_model
from tests.engine.app.daemon.helpers import DaemonProcess
from tests.ml.helpers import champion_db


def _small_regime_model(seed: int = 0) -> HistGradientBoostingClassifier:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(regime.FEATURES)))
    y = np.where(rng.random(300) < 0.9, int(Regime.TREND_DOWN), int(Regime.SHOCK))
    return HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)


@pytest.fixture
def registry(tmp_path):
    """A database whose regime champion is a small simulator-trained model (as ``train regime`` registers it)."""
    return champion_db(tmp_path, _small_regime_model(), "regime-1", "regime")


def _model_info(daemon: DaemonProcess) -> list[str]:
    return sorted(key for key in _metrics(daemon) if key.startswith("chimera_model_info{"))


def _serve_once(tmp_path, db, *args: str) -> list[str]:
    """Start a daemon on ``db``, read which models it runs, stop it."""
    daemon = DaemonProcess(tmp_path, "--symbol", "AAPL", "--set", "daemon.speed=50", *args, db=db).start()
    try:
        daemon.wait_ready()
        return _model_info(daemon)
    finally:
        assert daemon.stop() == 0


def _metrics(daemon: DaemonProcess) -> dict[str, float]:
    status, text, _ = daemon.request("GET", "/metrics")
    assert status == 200
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def _summaries(db) -> list[dict]:
    conn = store.connect(db)
    try:
        return [orjson.loads(row[0]) for row in conn.execute("SELECT summary FROM runs WHERE command = 'daemon'")]
    finally:
        conn.close()


def test_the_champion_is_loaded_named_in_the_metrics_and_in_the_session_summary(registry, tmp_path):
    db, _ = registry
    daemon = DaemonProcess(tmp_path, "--symbol", "AAPL", "--set", "daemon.speed=50", db=db).start()
    try:
        daemon.wait_ready()
        values = _metrics(daemon)
        assert values['chimera_model_info{kind="regime",mode="live",version="regime-1"}'] == 1.0
        assert 'chimera_scorer_info{scorer="UntrainedScorer"}' in values  # no signal classifier registered
        assert daemon.wait_log("models_loaded")["models"] == [{"kind": "regime", "version": "regime-1",
                                                               "mode": "live"}]
    finally:
        assert daemon.stop() == 0
    summaries = _summaries(db)
    assert summaries and all(s["models"] == [{"kind": "regime", "version": "regime-1", "mode": "live"}]
                             for s in summaries)


def test_a_modified_champion_stops_the_daemon_in_one_line_before_it_binds(registry, tmp_path):
    db, path = registry
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    daemon = DaemonProcess(tmp_path, "--symbol", "AAPL", db=db)
    assert daemon.process.wait(90) == 2  # exits by itself
    daemon.stop()
    lines = daemon.log_path.read_text().strip().splitlines()
    refused = [line for line in lines if "refusing to load it" in line]
    assert len(refused) == 1 and str(path) in refused[0] and "(modified)" in refused[0]
    assert "Traceback" not in daemon.log_path.read_text()
    assert not any(entry.get("event") == "daemon_listening" for entry in daemon.lines())
    assert _summaries(db) == []


def test_no_ml_loads_no_model_even_a_modified_one(registry, tmp_path):
    db, path = registry
    path.write_bytes(path.read_bytes() + b"\x00")
    daemon = DaemonProcess(tmp_path, "--symbol", "AAPL", "--set", "daemon.speed=50", "--no-ml", db=db).start()
    try:
        daemon.wait_ready()
        values = _metrics(daemon)
        assert not any(key.startswith("chimera_model_info{") for key in values)
    finally:
        assert daemon.stop() == 0
    assert all(s["models"] == [] for s in _summaries(db))


def test_a_restart_resumes_the_versions_it_ran_and_champions_takes_the_new_one(registry, tmp_path):
    db, _ = registry
    first = ['chimera_model_info{kind="regime",mode="live",version="regime-1"}']
    assert _serve_once(tmp_path, db) == first
    path = (tmp_path / "models" / "regime-2.skops").resolve()
    conn = store.connect(db)
    try:  # a new version is trained and promoted while the daemon is down
        rows.register_model(conn, version="regime-2", kind="regime", path=str(path),
                            sha256=save_model(_small_regime_model(1), path), training={"source": "simulator"},
                            metrics={}, mode="shadow")
        rows.promote_model(conn, "regime-2")
    finally:
        conn.close()
    assert _serve_once(tmp_path, db) == first  # resumed: the version it ran before the restart
    second = ['chimera_model_info{kind="regime",mode="live",version="regime-2"}']
    assert _serve_once(tmp_path, db, "--champions") == second
    assert _serve_once(tmp_path, db) == second  # the checkpoint now names regime-2


def test_a_resumed_version_gone_from_the_registry_stops_the_daemon_in_one_line(registry, tmp_path):
    db, _ = registry
    _serve_once(tmp_path, db)
    conn = store.connect(db)
    try:
        with conn:
            conn.execute("DELETE FROM models WHERE version = 'regime-1'")
    finally:
        conn.close()
    daemon = DaemonProcess(tmp_path, "--symbol", "AAPL", db=db)
    assert daemon.process.wait(90) == 2
    daemon.stop()
    text = daemon.log_path.read_text()
    assert "regime model regime-1, which ran before the restart, is no longer in the registry" in text
    assert "--champions" in text and "Traceback" not in text
