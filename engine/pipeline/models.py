"""The models a run uses: the registry's champions, verified and loaded before the run starts.

``load_run_models`` reads the champion of each kind from the run's database (``engine/store/models.py``)
and loads its file only if the SHA-256 matches the registry and every type in it is trusted
(``ml/registry.py``); a modified, missing or untrusted file raises ``ModelRefused`` (one line, exit
code 2) before any run row is written. ``--no-ml`` loads nothing.

Mode (SPEC section 12): a model trained only on simulated data runs ``shadow`` on real data (replays of
LOBSTER, DBN and tape files): its scores are computed and recorded (F26 in the feature samples and
the signals' evidence) but do not gate or size anything. On simulated data, or when the registry
marks it ``live`` (a real-data check passed), it runs ``live``.

The signal classifier (kind ``signal``, ``chimera train signals``) scores every signal when it is the
champion: live, the confidence becomes its calibrated probability; shadow, the probability is
recorded in the signal's evidence and the fallback ``S_raw * C`` (SPEC 4.8) still decides. Without
one the confidence is the fallback; ``confidence_note`` says which in the run summary.

The price-target model (kind ``target``, trained by ``chimera train signals``) predicts each signal's
take-profit: live, the risk manager uses it; shadow, it is recorded in the signal's evidence and the
strategy's own target is used; ``target_note`` says which in the run summary.

With ``[ml.online] enabled`` and a signal classifier, an ``OnlineLearner`` (``ml/online.py``) sits
between the classifier and the scoring stage (the served probability is its recalibration) and
learns from every trade the execution stage closes; its retrained challengers are recorded in this
registry (``RegistryBook``). ``--no-ml`` loads nothing, so it never runs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from engine import store
from engine.config import Config
from engine.store import models as registry_rows

FALLBACK_NOTE = "S_raw*C fallback (no signal classifier in the registry)"
STRATEGY_TARGETS = "the strategies' own targets (no price-target model in the registry)"
DISABLED_NOTE = "S_raw, models disabled (--no-ml)"


@dataclass(frozen=True)
class LoadedModel:
    kind: str
    version: str
    mode: str  # "live" or "shadow"
    model: object

    def describe(self) -> dict:
        return {"kind": self.kind, "version": self.version, "mode": self.mode}


@dataclass(frozen=True)
class RunModels:
    """The verified models of one run (none with ``--no-ml`` or an empty registry)."""

    regime: LoadedModel | None = None
    signal: LoadedModel | None = None
    intercepts: dict | None = None  # the signal classifier's per-(strategy, regime) intercepts
    disabled: bool = False
    target: LoadedModel | None = None  # the price-target model (kind ``target``)
    registry_path: str | None = None  # the database whose registry the champions came from
    signal_row: registry_rows.ModelRow | None = None  # the signal champion's registry row

    def describe(self) -> list[dict]:
        """``[{kind, version, mode}]`` of the models that ran."""
        return [m.describe() for m in (self.regime, self.signal, self.target) if m is not None]

    def target_note(self) -> str:
        """Which take-profit the orders used: the price-target model's (live) or the strategies' own."""
        if self.disabled:
            return "the strategies' own targets (models disabled, --no-ml)"
        if self.target is None:
            return STRATEGY_TARGETS
        if self.target.mode == "live":
            return f"take-profit from price-target model {self.target.version}"
        return (f"the strategies' own targets; price-target model {self.target.version} in shadow "
                "(its target in the evidence)")

    def targets(self, min_r: float, max_r: float):
        """The scoring stage's price-target predictor, or None without a price-target model."""
        if self.target is None or self.disabled:
            return None
        from ml.price_target import TargetPredictor

        return TargetPredictor(self.target.model, self.target.version, self.target.mode == "live", min_r, max_r)

    def confidence_note(self) -> str:
        if self.disabled:
            return DISABLED_NOTE
        if self.signal is not None:
            if self.signal.mode == "live":
                return f"calibrated probability of signal classifier {self.signal.version}"
            return f"S_raw*C fallback; signal classifier {self.signal.version} in shadow (its p in the evidence)"
        return FALLBACK_NOTE

    def scorer(self, online=None):
        """The scoring stage's scorer: the signal classifier when one is loaded (served through the
        online layer ``online`` when given), else None."""
        if self.signal is None:
            return None
        from ml.scoring import ClassifierScorer

        return ClassifierScorer(self.signal.model, self.signal.version, self.intercepts or {},
                                self.signal.mode == "live", online=online)

    def online_learner(self, config: Config):
        """The run's online layer (``[ml.online]``), or None: disabled, no signal classifier, or ``--no-ml``."""
        params = config.ml.online
        if self.disabled or self.signal is None or not params.enabled:
            return None
        from ml.online import EXECUTORS, OnlineLearner, OnlineParams

        row = self.signal_row
        book = None
        model_dir = Path(row.path).parent / "online" if row is not None else Path("models") / "online"
        if self.registry_path:
            book = RegistryBook(self.registry_path, config.store.busy_timeout_ms, row.mode if row else "shadow")
        learner = OnlineLearner(
            self.signal.model, self.signal.version,
            OnlineParams(warmup_trades=params.warmup_trades, learning_rate=params.learning_rate,
                         loss_window=params.loss_window, ph_delta=params.ph_delta, ph_threshold=params.ph_threshold,
                         adwin_delta=params.adwin_delta, retrain_every=params.retrain_every,
                         retrain_window=params.retrain_window, promote_trades=params.promote_trades,
                         folds=params.folds, max_iter=params.max_iter, seed=config.run.seed),
            model_dir=model_dir, intercepts=self.intercepts or {}, book=book,
            fit_executor_factory=EXECUTORS[params.executor])
        learner.start()  # the retrain worker starts with the run, not in the middle of one
        return learner


class RegistryBook:
    """Records the online layer's model versions in a registry (``ml.online.ModelBook``): each challenger
    as a ``candidate`` of kind ``signal`` (its training window and figures), then its shadow figures and
    whether it was promoted to champion or retired. One short connection per record."""

    def __init__(self, db_path: str, busy_timeout_ms: int = 5000, mode: str = "shadow") -> None:
        self.db_path = db_path
        self.busy_timeout_ms = busy_timeout_ms
        self.mode = mode

    def register(self, *, version: str, path: str, sha256: str, training: dict, metrics: dict) -> None:
        conn = store.connect(self.db_path, self.busy_timeout_ms)
        try:
            registry_rows.register_model(conn, version=version, kind="signal", path=path, sha256=sha256,
                                         training=training, metrics=metrics, mode=self.mode)
        finally:
            conn.close()

    def decide(self, version: str, promoted: bool, metrics: dict) -> None:
        conn = store.connect(self.db_path, self.busy_timeout_ms)
        try:
            registry_rows.record_decision(conn, version, promoted, metrics)
        finally:
            conn.close()


def run_mode(row: registry_rows.ModelRow, real_data: bool) -> str:
    """``shadow`` for a model trained only on simulated data on real data (SPEC 12), else ``live``."""
    simulated_only = row.mode == "shadow" or row.training.get("source") == "simulator"
    return "shadow" if real_data and simulated_only else "live"


def load_run_models(conn: sqlite3.Connection, *, no_ml: bool, real_data: bool,
                    pinned: dict[str, str] | None = None) -> RunModels:
    """The champions of the run's registry, verified and loaded (see the module docstring).

    ``pinned`` (kind -> version): those versions instead of the champions of their kinds (a restarted
    daemon resumes the versions it ran); the other kinds take their champion.

    Raises:
        ModelRefused: a model's file is modified, missing, unknown or holds an untrusted type, or a pinned
            version is no longer registered.
    """
    if no_ml:
        return RunModels(disabled=True)
    loaded: dict[str, LoadedModel] = {}
    used: dict[str, registry_rows.ModelRow] = {}
    for kind in ("regime", "signal", "target"):
        version = (pinned or {}).get(kind)
        row = registry_rows.champion(conn, kind) if version is None else registry_rows.get_model(conn, version)
        if row is None and version is not None:
            from ml.registry import ModelRefused

            raise ModelRefused(f"{kind} model {version}, which ran before the restart, is no longer in the "
                               "registry; refusing to start (take the champions with --champions)")
        if row is None:
            continue
        from ml.registry import load_model  # skops and scikit-learn load only when a model does (1.5 s, 100 MiB)

        loaded[kind] = LoadedModel(kind, row.version, run_mode(row, real_data), load_model(row.path, row.sha256))
        used[kind] = row
    files = [r[2] for r in conn.execute("PRAGMA database_list").fetchall() if r[1] == "main"]
    signal_row = used.get("signal")
    return RunModels(regime=loaded.get("regime"), signal=loaded.get("signal"),
                     intercepts=dict(signal_row.training.get("intercepts") or {}) if signal_row else {},
                     registry_path=files[0] if files and files[0] else None, signal_row=signal_row,
                     target=loaded.get("target"))
