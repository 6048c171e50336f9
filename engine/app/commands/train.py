"""``train regime``: fit the regime model (SPEC section 5) on simulator sessions and evaluate it on
seeds never used in training.

Training sessions use seeds ``S .. S+N-1``, the evaluation sessions the next ``--test-sessions`` seeds;
both lists are in the summary and never overlap. Each session simulates one synthetic instrument of a
profile (alternating ``large_tick`` and ``small_tick`` with ``--profile both``) for ``--minutes``; the
labels are the simulator's true regime at every TF2 close. The fitted model is saved with skops
next to the database (``models/``) and registered as a ``candidate`` in shadow mode (trained on
simulated data only, SPEC 12); ``--promote`` makes it the champion that runs load.
``train signals`` (the signal classifier) lives in ``train_signals``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from rich.table import Table

from engine import store
from engine.app import arguments
from engine.app.commands import train_signals
from engine.app.commands.common import json_summary, progress_bar, register_model, seed_list
from engine.config import Config
from engine.errors import UsageError
from ml.registry import save_model

PROFILES = ("large_tick", "small_tick")


def register(sub, common, reporting) -> dict:
    train = sub.add_parser("train", help="train a model on simulator sessions and register it")
    kinds = train.add_subparsers(dest="kind", required=True)
    reg = kinds.add_parser("regime", parents=[common, reporting],
                           help="the regime model: train on simulated sessions, evaluate on unseen seeds")
    reg.add_argument("--sessions", type=_count, default=48, help="training sessions (default 48)")
    reg.add_argument("--test-sessions", type=_count, default=32, help="evaluation sessions (default 32)")
    reg.add_argument("--minutes", type=arguments.positive, default=120.0,
                     help="simulated minutes per session (default 120)")
    reg.add_argument("--seed", type=_count, default=1, help="first training seed (default 1)")
    reg.add_argument("--profile", choices=(*PROFILES, "both"), default="both",
                     help="simulator profile of the sessions (default: alternate both)")
    reg.add_argument("--folds", type=int, default=3, help="purged K-fold CV folds on the training set (0: skip)")
    reg.add_argument("--db", metavar="PATH", help="SQLite file of the model registry (default: [store] path)")
    reg.add_argument("--promote", action="store_true", help="make the new model the regime champion")
    ex = kinds.add_parser("exits", parents=[common, reporting],
                          help="the Q-learning exit agent: train on simulated entries, compare exit policies "
                               "on held-out seeds with a paired test")
    ex.add_argument("--symbol", type=str.upper, help="the simulated instrument (default: the first of [run] symbols)")
    ex.add_argument("--seeds", type=_count, default=16,
                    help="training sessions: seeds 1..N (default 16; --train-seeds overrides)")
    ex.add_argument("--train-seeds", type=seed_list, help="training seeds, e.g. 1,2,3")
    ex.add_argument("--test-seeds", type=seed_list, default=tuple(range(101, 111)),
                    help="held-out evaluation seeds (default 101..110)")
    ex.add_argument("--minutes", type=arguments.positive, default=60.0,
                    help="simulated minutes per session (default 60)")
    ex.add_argument("--workers", type=_count, default=2, help="processes simulating sessions (default 2)")
    ex.add_argument("--max-epochs", type=_count, default=300, help="cap on training epochs (default 300)")
    ex.add_argument("--draws", type=_count, default=10_000, help="paired bootstrap draws (default 10000)")
    ex.add_argument("--evaluate", nargs="?", const="latest", metavar="VERSION",
                    help="no training: re-run the paired test on the held-out seeds with a registered table "
                         "(default: the latest exit_agent version, e.g. one a shadow run updated)")
    ex.add_argument("--no-on-policy", dest="on_policy", action="store_false",
                    help="skip the final on-policy check (the held-out seeds re-run with the agent's exits)")
    ex.add_argument("--db", metavar="PATH", help="SQLite file of the model registry (default: [store] path)")
    train_signals.add_parser(kinds, common, reporting, _count)
    return {"train": cmd_train}



def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def session_profile(profile: str, seed: int) -> str:
    return (PROFILES[seed % 2] if profile == "both" else profile)


def simulated_regime_session(config: Config, *, seed: int, minutes: float, profile: str):
    """``(RegimeInputs, truth per TF2 close)`` of one simulated instrument of ``profile``."""
    from feeds.simulator.check import profile_config, simulate_series
    from feeds.simulator.facts import regime_inputs
    from feeds.simulator.series import regime_path
    from ml.labels import step_values

    cfg = profile_config(config, profile)
    cfg = msgspec.structs.replace(cfg, run=msgspec.structs.replace(cfg.run, symbols=list(cfg.run.symbols)[:1]))
    series, _, _ = simulate_series(cfg, minutes=minutes, seed=seed)
    out = []
    for s in series.values():
        x, close_ts = regime_inputs(s)
        if x is None:
            continue
        times, values = regime_path(s)
        out.append((x, step_values(times, values, close_ts)))
    return out


def cmd_train(args, config: Config) -> int:
    from ml import regime  # scikit-learn loads here, not with every command

    if args.kind == "exits":
        from engine.app.commands.exits import cmd_train_exits

        return cmd_train_exits(args, config)
    if args.kind == "signals":
        return train_signals.cmd_train_signals(args, config)
    if args.folds == 1 or args.folds < 0:
        raise UsageError("--folds must be 0 (no cross-validation) or at least 2")
    db = args.db or config.store.path
    store.check_database(db)
    train_seeds = list(range(args.seed, args.seed + args.sessions))
    test_seeds = list(range(train_seeds[-1] + 1, train_seeds[-1] + 1 + args.test_sessions))
    assert not set(train_seeds) & set(test_seeds)
    train, test = [], []
    with progress_bar(args, remaining=False) as progress:
        task = progress.add_task("simulating sessions", total=len(train_seeds) + len(test_seeds) + 1) \
            if progress else None
        for seeds, into in ((train_seeds, train), (test_seeds, test)):
            for seed in seeds:
                into.extend(simulated_regime_session(config, seed=seed, minutes=args.minutes,
                                                     profile=session_profile(args.profile, seed)))
                if progress:
                    progress.advance(task)
        if progress:
            progress.update(task, description="fitting the regime model")
        train_set, test_set = regime.RegimeSet.build(train, mirror=True), regime.RegimeSet.build(test)
        if len(set(train_set.y.tolist())) < 2:
            raise UsageError("the training sessions hold fewer than two regimes; use more or longer sessions")
        model = regime.train_regime(train_set, seed=args.seed)
        cv = regime.cross_validate(train_set, n_splits=args.folds, seed=args.seed) if args.folds else None
        report = regime.evaluate(test_set.y, regime.predict(model, test_set.X))
        if progress:
            progress.advance(task)
    summary = _register(args, config, db, model, report, cv, train_seeds, test_seeds, len(train_set.y))
    _emit(args, summary)
    return 0


def _register(args, config: Config, db: str, model, report: dict, cv: dict | None, train_seeds: list[int],
              test_seeds: list[int], train_rows: int) -> dict:
    from ml import regime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    version = f"regime-{stamp}"
    path = (Path(db).resolve().parent / "models" / f"{version}.skops")
    sha = save_model(model, path)
    training = {"source": "simulator", "profile": args.profile, "minutes": args.minutes,
                "train_seeds": train_seeds, "test_seeds": test_seeds, "rows": train_rows,
                "features": list(regime.FEATURES)}
    metrics = {k: report[k] for k in ("n", "balanced_accuracy", "macro_f1", "recall")}
    row = register_model(config, db, promote=args.promote, version=version, kind="regime", path=str(path),
                         sha256=sha, training=training, metrics=metrics)
    return {"command": "train regime", "db": db, "model": row.as_dict(), "train_seeds": train_seeds,
            "test_seeds": test_seeds, "train_rows": train_rows, **report, "cv": cv}


def _emit(args, summary: dict) -> None:
    from engine.app.report import console

    if json_summary(args, summary):
        return
    table = Table(title=f"Regime model {summary['model']['version']} on unseen seeds {summary['test_seeds']}")
    table.add_column("truth \\ predicted")
    for name in summary["labels"]:
        table.add_column(name, justify="right")
    table.add_column("recall", justify="right")
    for name, row in zip(summary["labels"], summary["confusion"], strict=True):
        recall = summary["recall"].get(name)
        table.add_row(name, *map(str, row), "-" if recall is None else f"{recall:.2f}")
    out = console()
    out.print(table)
    out.print(f"balanced accuracy {summary['balanced_accuracy']:.3f}   macro-F1 {summary['macro_f1']:.3f}   "
              f"rows {summary['n']}   status {summary['model']['status']} ({summary['model']['mode']})")
