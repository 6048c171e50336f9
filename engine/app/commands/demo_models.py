"""The demo's model set: a small regime model, signal classifier and price-target model, trained on first
use of ``chimera demo`` and cached, so the demo runs with ML without downloads.

The set trains on simulator sessions whose seeds the demo's own session never uses (``TRAIN_SEEDS``
onwards), with the commands' own pieces (``train regime``'s sessions and fit, ``train signals``'
labelled signals, ``ml.price_target``), kept small to train in about a minute on two cores. It is
cached under ``[ml] data_dir`` (default ``$XDG_DATA_HOME/chimera``, else ``~/.local/share/chimera``)
in ``models/demo-<key>/``: a ``manifest.json`` and one skops file per model. ``key`` is a hash of the
configuration, the feature lists and the recipe below, so a changed configuration trains a new set.
Each later demo registers the cached files in its database as the champions (the SHA-256 of each
file is checked when the run loads it, as for every model). They are simulator-trained models: live
on simulated data, shadow on recorded data (SPEC 12); the run summary lists their versions and modes.

A model the small set cannot support (too few labelled signals for the classifier or the price-target
model) is left out, and the manifest says why; the demo then runs with the models it has.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson

from engine import store
from engine.config import Config
from engine.store import models as registry_rows

TRAIN_SEEDS = 1001  # first seed of the demo set's sessions (the demo itself runs [run] seed)
REGIME = {"sessions": 2, "test_sessions": 1, "minutes": 30.0}
SIGNALS = {"sessions": 2, "minutes": 20.0, "max_iter": 50, "folds": 3}
RECIPE_VERSION = 2


def data_dir(config: Config) -> Path:
    """``[ml] data_dir``, or ``$XDG_DATA_HOME/chimera``, or ``~/.local/share/chimera``."""
    if config.ml.data_dir:
        return Path(config.ml.data_dir).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "chimera"


def cache_key(config: Config) -> str:
    from ml import regime
    from ml import signal_model as sm

    parts = [config.hash(), list(regime.FEATURES), list(sm.FEATURES), REGIME, SIGNALS, TRAIN_SEEDS, RECIPE_VERSION]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]


def ensure_demo_models(config: Config, db: str, progress=None) -> dict:
    """Make the cached demo set the champions of ``db``'s registry, training it first when not cached.

    Returns ``{"trained": bool, "cache": dir, "models": [versions], "left_out": {kind: reason}}``.
    A registry that already holds a champion of a kind keeps it.
    """
    cache = data_dir(config) / "models" / f"demo-{cache_key(config)}"
    manifest_path = cache / "manifest.json"
    trained = False
    if manifest_path.is_file():
        manifest = orjson.loads(manifest_path.read_bytes())
    else:
        manifest = train_demo_set(config, cache, progress)
        tmp = manifest_path.with_name("manifest.json.tmp")
        tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        tmp.replace(manifest_path)  # another demo reading at the same time sees the whole file or none
        trained = True
    store.check_database(db)
    conn = store.connect(db, config.store.busy_timeout_ms)
    try:
        for entry in manifest["models"]:
            if registry_rows.champion(conn, entry["kind"]) is not None:
                continue
            if registry_rows.get_model(conn, entry["version"]) is None:
                registry_rows.register_model(conn, version=entry["version"], kind=entry["kind"],
                                             path=str(cache / entry["file"]), sha256=entry["sha256"],
                                             training=entry["training"], metrics=entry["metrics"], mode="shadow")
            registry_rows.promote_model(conn, entry["version"])
    finally:
        conn.close()
    return {"trained": trained, "cache": str(cache), "models": [e["version"] for e in manifest["models"]],
            "left_out": manifest["left_out"]}


def train_demo_set(config: Config, cache: Path, progress=None) -> dict:
    """Train the demo set into ``cache``; the manifest (written by the caller)."""
    from engine.app.commands.train import session_profile, simulated_regime_session
    from engine.app.commands.train_signals import simulated_signals
    from engine.pipeline.models import LoadedModel, RunModels
    from ml import price_target as pt
    from ml import regime
    from ml import signal_model as sm
    from ml.registry import save_model

    key = cache.name.removeprefix("demo-")
    task = progress.add_task("training the demo models (first use; cached)", total=4) if progress else None

    def step() -> None:
        if progress:
            progress.advance(task)

    models: list[dict] = []
    left_out: dict[str, str] = {}

    def keep(kind: str, model, training: dict, metrics: dict) -> None:
        version = f"demo-{kind}-{key}"
        file = f"{version}.skops"
        sha = save_model(model, cache / file)
        models.append({"kind": kind, "version": version, "file": file, "sha256": sha,
                       "training": {"source": "simulator", "purpose": "demo", **training}, "metrics": metrics})

    # the regime model: train regime's sessions and fit, on a few short sessions
    seeds = list(range(TRAIN_SEEDS, TRAIN_SEEDS + REGIME["sessions"] + REGIME["test_sessions"]))
    sessions = [simulated_regime_session(config, seed=s, minutes=REGIME["minutes"], profile=session_profile("both", s))
                for s in seeds]
    step()
    train_set = regime.RegimeSet.build([x for part in sessions[:REGIME["sessions"]] for x in part])
    test_set = regime.RegimeSet.build([x for part in sessions[REGIME["sessions"]:] for x in part])
    regime_model = regime.train_regime(train_set, seed=TRAIN_SEEDS)
    report = regime.evaluate(test_set.y, regime.predict(regime_model, test_set.X))
    keep("regime", regime_model, {"minutes": REGIME["minutes"], "train_seeds": seeds[:REGIME["sessions"]],
                                  "test_seeds": seeds[REGIME["sessions"]:], "rows": len(train_set.y)},
         {k: report[k] for k in ("n", "balanced_accuracy", "macro_f1")})
    step()

    # the signal classifier and the price-target model: train signals' labelled signals
    run_models = RunModels(regime=LoadedModel("regime", models[0]["version"], "live", regime_model))
    start = seeds[-1] + 1
    signal_seeds = list(range(start, start + SIGNALS["sessions"]))
    data = sm.SignalSet.concat([simulated_signals(config, s, SIGNALS["minutes"], run_models, k)
                                for k, s in enumerate(signal_seeds)])
    step()
    training = {"minutes": SIGNALS["minutes"], "seeds": signal_seeds, "symbols": list(config.run.symbols),
                "labelled": len(data), "features": list(sm.FEATURES)}
    try:
        classifier = sm.train(data, SIGNALS["max_iter"], n_splits=SIGNALS["folds"], seed=TRAIN_SEEDS)
        keep("signal", classifier, {**training, "intercepts": {}, "calibration": sm.calibration_method(len(data))},
             {"labelled": len(data), "positives": int(data.y.sum())})
    except ValueError as exc:
        left_out["signal"] = str(exc)
    try:
        target = pt.train(data, config.ml.target_quantile, seed=TRAIN_SEEDS)
        keep("target", target, {**training, "quantile": config.ml.target_quantile}, {"labelled": len(data)})
    except ValueError as exc:
        left_out["target"] = str(exc)
    step()
    return {"key": key, "models": models, "left_out": left_out}
