"""The registry's champion regime model in run and replay: verified before the run, live or shadow,
``--no-ml`` bypassing it, and the summary naming the models that ran."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from engine import store
from engine.app.cli import main
from engine.config import load_config
from engine.events import Regime
from engine.pipeline import RunOptions, run_reference
from engine.pipeline.models import DISABLED_NOTE, FALLBACK_NOTE, LoadedModel, RunModels, run_mode
from engine.store import models as rows
from feeds.simulator import MarketSimulator
from ml import regime
from tests.ml.helpers import champion_db

TREND_DOWN = int(Regime.TREND_DOWN)


@pytest.fixture(scope="module")
def trend_down_model():
    """A regime model whose argmax is TREND_DOWN whatever the features (nine in ten labels are)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(regime.FEATURES)))
    y = np.where(rng.random(300) < 0.9, TREND_DOWN, int(Regime.SHOCK))
    return HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)


@pytest.fixture
def registry(tmp_path, trend_down_model):
    """A database whose regime champion is a simulator-trained model (registered as ``train`` does)."""
    return champion_db(tmp_path, trend_down_model, "regime-1", "regime")


def _run(args: list[str], capsys) -> tuple[int, dict | None, str]:
    code = main(args)
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    summary = orjson.loads(lines[-1]) if code == 0 and lines else None
    return code, summary, out.err


def _runs(db) -> int:
    conn = store.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    finally:
        conn.close()


def test_run_uses_the_champion_live_and_says_so(registry, capsys):
    db, _ = registry
    code, summary, _ = _run(["run", "--symbol", "AAPL", "--duration", "20", "--db", str(db), "--json",
                             "--no-progress"], capsys)
    assert code == 0
    assert summary["models"] == [{"kind": "regime", "version": "regime-1", "mode": "live"}]
    assert summary["confidence"] == FALLBACK_NOTE


def test_no_ml_bypasses_the_models(registry, capsys):
    """--no-ml loads nothing: even a damaged champion file does not stop the run."""
    db, path = registry
    path.write_bytes(path.read_bytes() + b"\x00")
    code, summary, _ = _run(["run", "--symbol", "AAPL", "--duration", "20", "--db", str(db), "--json",
                             "--no-progress", "--no-ml"], capsys)
    assert code == 0
    assert summary["models"] == [] and summary["confidence"] == DISABLED_NOTE


def test_an_empty_registry_runs_without_models(tmp_path, capsys):
    code, summary, _ = _run(["run", "--symbol", "AAPL", "--duration", "20", "--db", str(tmp_path / "e.db"),
                             "--json", "--no-progress"], capsys)
    assert code == 0
    assert summary["models"] == [] and summary["confidence"] == FALLBACK_NOTE


def test_a_tampered_champion_refuses_the_run_in_one_line(registry, capsys):
    """Bytes changed after registration: exit 2, one line naming the file, no run row written."""
    db, path = registry
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, _, err = _run(["run", "--symbol", "AAPL", "--duration", "20", "--db", str(db), "--no-progress"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and str(path) in err and "(modified); refusing to load it" in err
    assert "Traceback" not in err
    assert _runs(db) == 0


def test_a_missing_champion_file_refuses_the_run(registry, capsys):
    db, path = registry
    path.unlink()
    code, _, err = _run(["run", "--symbol", "AAPL", "--duration", "20", "--db", str(db), "--no-progress"], capsys)
    assert code == 2 and "cannot be read" in err and err.count("\n") == 1


def test_replay_of_recorded_data_runs_a_simulator_trained_model_in_shadow(registry, tmp_path, capsys):
    db, _ = registry
    tape = tmp_path / "t.jsonl.gz"
    assert main(["record", "--symbol", "AAPL", "--duration", "20", "--out", str(tape)]) == 0
    capsys.readouterr()
    code, summary, _ = _run(["replay", str(tape), "--db", str(db), "--json", "--no-progress"], capsys)
    assert code == 0
    assert summary["models"] == [{"kind": "regime", "version": "regime-1", "mode": "shadow"}]


def test_run_mode_follows_spec_12():
    sim = rows.ModelRow("v", "regime", "p", "s", "t", {"source": "simulator"}, {}, "champion", "shadow")
    real = rows.ModelRow("v", "regime", "p", "s", "t", {"source": "replay"}, {}, "champion", "live")
    assert run_mode(sim, real_data=True) == "shadow"
    assert run_mode(sim, real_data=False) == "live"
    assert run_mode(real, real_data=True) == "live"


def _signals(mode: str | None, model) -> list:
    config = load_config()
    models = None if mode is None else RunModels(regime=LoadedModel("regime", "t", mode, model))
    feed = MarketSimulator(["AAPL", "TSLA"], config, seed=5, duration_s=600.0)
    return run_reference(feed, config, RunOptions(models=models))[0]


def _key(s) -> tuple:
    return (s.signal_id, s.side, s.entry_price, s.stop, s.targets, s.score, s.confluence, s.regime, s.confidence)


def test_live_regime_fills_the_signal_and_gates_shadow_changes_nothing(trend_down_model):
    """Live: once the model is ready (30 TF2 bars) every signal's regime is its argmax (TREND_DOWN) and
    the gate matrix uses it (mean reversion is off in a trend). Shadow: the signals are those of a run
    without a model, plus the model's regime and probability in their evidence."""
    plain, live, shadow = (_signals(m, trend_down_model) for m in (None, "live", "shadow"))
    scored = [s for s in live if "regime_ml" in s.evidence]
    assert scored and all(s.regime == "TREND_DOWN" and s.evidence["regime_ml"] == TREND_DOWN for s in scored)
    ready = min(s.ts_recv for s in scored)
    gated = {s.signal_id for s in plain} - {s.signal_id for s in live}
    assert gated and all(s.strategy == "mean_reversion" for s in plain if s.signal_id in gated)
    assert not [s for s in live if s.strategy == "mean_reversion" and s.ts_recv >= ready]
    assert [_key(s) for s in shadow] == [_key(s) for s in plain]
    recorded = [s for s in shadow if "regime_ml" in s.evidence]
    assert recorded and all(s.regime != "TREND_DOWN" or s.evidence["regime_ml"] == TREND_DOWN for s in recorded)
    assert all({k: v for k, v in s.evidence.items() if not k.startswith("regime_ml")} == p.evidence
               for s, p in zip(shadow, plain, strict=True))
