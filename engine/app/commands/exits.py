"""``train exits``: the Q-learning exit agent (SPEC 7) trained on simulated entries and compared, on
held-out seeds, with the fixed bracket, the time stop and a trailing stop on the very same entries.

Each session is one seed of the simulator for ``--minutes``, run through the product's own run path
(``engine.pipeline.evaluation.entry_paths``: strategies, risk, simulated execution); every entry's
path after its fill is stored and the exit policies are replayed on it (``ml.exit_agent``). The
decision follows SPEC 7: the agent is accepted only if its mean net R per trade beats the fixed
bracket's with p < 0.05 in both the paired bootstrap and the Wilcoxon signed-rank test and its
drawdown in R is not worse; otherwise the fixed bracket ships. The Q-table is saved as a ``.npz`` of
plain arrays (loaded back only with ``allow_pickle=False`` and a matching SHA-256) and registered
with its training window, the comparison table and the decision; it becomes the ``exit_agent``
champion only when accepted, and only then does the summary give the ``[execution] exit_agent`` keys
that let runs use it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table

from engine import store
from engine.app.commands.common import json_summary, progress_bar, register_model
from engine.config import Config
from engine.errors import UsageError
from engine.store import models as registry_rows

KIND = "exit_agent"


def _executor(workers: int):
    """Serial, or a process pool (``ml.executors.PoolExecutor``)."""
    from ml.executors import PoolExecutor, SerialExecutor

    return SerialExecutor() if workers <= 1 else PoolExecutor(workers)


def _paths_of(dataset, seed: int) -> list:
    from engine.pipeline.evaluation import entry_paths

    return entry_paths(dataset.subset((seed,)))


def cmd_train_exits(args, config: Config) -> int:
    from engine.pipeline.evaluation import Dataset
    from ml import exit_agent
    db = args.db or config.store.path
    store.check_database(db)
    train_seeds = tuple(args.train_seeds) if args.train_seeds else tuple(range(1, args.seeds + 1))
    test_seeds = tuple(args.test_seeds)
    overlap = sorted(set(train_seeds) & set(test_seeds))
    if overlap and not args.evaluate:
        raise UsageError(f"--test-seeds {overlap} are also training seeds: held-out sessions must be new")
    symbol = args.symbol or config.run.symbols[0]
    if symbol not in config.run.symbols and symbol not in config.instruments:
        raise UsageError(f"--symbol {symbol}: not in [run] symbols or [instruments]")
    dataset = Dataset(config=config, symbol=symbol, seeds=train_seeds + test_seeds, minutes=args.minutes)
    if args.evaluate:
        return _evaluate_registered(args, config, db, dataset.subset(test_seeds))
    started = time.perf_counter()
    seeds = train_seeds + test_seeds
    per_seed: dict[int, list] = {}
    executor = _executor(min(args.workers, len(seeds)))
    try:
        with progress_bar(args, remaining=False) as progress:
            task = progress.add_task("simulating sessions", total=len(seeds) + 1) if progress else None
            step = max(1, executor.workers)
            for start in range(0, len(seeds), step):
                chunk = seeds[start:start + step]
                for seed, paths in zip(chunk, executor.map(_paths_of, [(dataset, s) for s in chunk]), strict=True):
                    per_seed[seed] = paths
                    if progress:
                        progress.advance(task)
            train = [p for s in train_seeds for p in per_seed[s]]
            test = [p for s in test_seeds for p in per_seed[s]]
            if not train:
                raise UsageError("the training sessions hold no entries; use more seeds or longer --minutes")
            if progress:
                progress.update(task, description="training the exit agent")
            result = exit_agent.train(train, exit_agent.TrainParams(max_epochs=args.max_epochs,
                                                                    min_epochs=min(30, args.max_epochs),
                                                                    seed=config.run.seed))
            comparison = exit_agent.compare(test, result.table, draws=args.draws, seed=config.run.seed)
            version, path = _table_file(db)
            sha = exit_agent.save_table(result.table, path)
            if progress:
                progress.advance(task)
            on_policy = None
            if args.on_policy:
                if progress:
                    progress.update(task, description="on-policy check on the held-out seeds")
                on_policy = _on_policy(executor, dataset.subset(test_seeds), str(path), sha)
    finally:
        executor.close()
    summary = {"command": "train exits", "db": db, "symbol": symbol, "minutes": args.minutes,
               "train_seeds": list(train_seeds), "test_seeds": list(test_seeds), "train_trades": len(train),
               "test_trades": len(test), "epochs": result.epochs, "converged": result.converged,
               "last_policy_change": result.changes[-1] if result.changes else None,
               "visited_states": int(result.table.visited().sum()), **comparison, "on_policy": on_policy}
    summary["model"] = _register(config, db, version, path, sha, summary)
    # the agent manages live exits only when it won: these keys enable it ([execution], docs/exits.md)
    summary["enable"] = {"execution.exit_agent": True, "execution.exit_agent_table": summary["model"]["path"],
                         "execution.exit_agent_sha256": summary["model"]["sha256"]} if summary["accepted"] else None
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    _emit(args, summary)
    return 0


def _evaluate_registered(args, config: Config, db: str, dataset) -> int:
    """``--evaluate``: the paired test again, on the held-out seeds, for a registered table (no training)."""
    from ml import exit_agent

    started = time.perf_counter()
    conn = store.connect(db, config.store.busy_timeout_ms)
    try:
        if args.evaluate == "latest":
            found = registry_rows.list_models(conn, KIND)
            row = found[-1] if found else None
        else:
            row = registry_rows.get_model(conn, args.evaluate)
            row = row if row is not None and row.kind == KIND else None
    finally:
        conn.close()
    if row is None:
        raise UsageError(f"--evaluate {args.evaluate}: no exit_agent table in the registry of {db} "
                         "(run `chimera train exits` first)")
    overlap = sorted(set(row.training.get("train_seeds", [])) & set(dataset.seeds))
    if overlap:
        raise UsageError(f"--test-seeds {overlap}: {row.version} was trained on them; held-out sessions must be new")
    table = exit_agent.load_table(row.path, row.sha256)
    executor = _executor(min(args.workers, len(dataset.seeds)))
    try:
        test = [p for found in executor.map(_paths_of, [(dataset, s) for s in dataset.seeds]) for p in found]
        comparison = exit_agent.compare(test, table, draws=args.draws, seed=config.run.seed)
        on_policy = _on_policy(executor, dataset, row.path, row.sha256) if args.on_policy else None
    finally:
        executor.close()
    if comparison["accepted"]:
        conn = store.connect(db, config.store.busy_timeout_ms)
        try:
            row = registry_rows.promote_model(conn, row.version)
        finally:
            conn.close()
    summary = {"command": "train exits --evaluate", "db": db, "symbol": dataset.symbol, "minutes": dataset.minutes,
               "train_seeds": row.training.get("train_seeds", []), "test_seeds": list(dataset.seeds),
               "train_trades": row.training.get("train_trades", row.training.get("paths", 0)),
               "test_trades": len(test), "epochs": row.training.get("epochs"),
               "converged": row.training.get("converged"),
               "visited_states": int(table.visited().sum()), **comparison, "on_policy": on_policy,
               "model": row.as_dict()}
    summary["enable"] = {"execution.exit_agent": True, "execution.exit_agent_table": row.path,
                         "execution.exit_agent_sha256": row.sha256} if comparison["accepted"] else None
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    _emit(args, summary)
    return 0


def _table_file(db: str) -> tuple[str, Path]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    version = f"exits-{stamp}"
    return version, Path(db).resolve().parent / "models" / f"{version}.npz"


def _evaluate_seed(params: dict, dataset) -> tuple:
    from engine.pipeline.evaluation import evaluate

    return evaluate(params, dataset).sessions


def _on_policy(executor, dataset, path: str, sha: str) -> dict:
    """SPEC 7's final check: the held-out sessions run again, the agent's exits now inside the run (they
    move the simulated book and the later entries), against the same sessions run with the bracket."""
    from engine.pipeline.evaluation import combine

    out = {}
    for name, params in (("fixed_bracket", {}), ("q_agent", {"execution.exit_agent": True,
                                                              "execution.exit_agent_table": path,
                                                              "execution.exit_agent_sha256": sha})):
        calls = [(params, dataset.subset((seed,))) for seed in dataset.seeds]
        sessions = [x for found in executor.map(_evaluate_seed, calls) for x in found]
        metrics = combine(sessions)
        out[name] = {"trades": metrics.trades, "mean_r": metrics.mean_r, "sharpe": metrics.sharpe,
                     "max_drawdown": metrics.max_drawdown, "pnl": metrics.pnl}
    return out


def _register(config: Config, db: str, version: str, path: Path, sha: str, summary: dict) -> dict:
    training = {"source": "simulator", "symbol": summary["symbol"], "minutes": summary["minutes"],
                "train_seeds": summary["train_seeds"], "test_seeds": summary["test_seeds"],
                "train_trades": summary["train_trades"], "epochs": summary["epochs"],
                "converged": summary["converged"]}
    metrics = {"policies": summary["policies"], "paired_test": summary["paired_test"],
               "on_policy": summary["on_policy"], "decision": summary["decision"], "reason": summary["reason"],
               "test_trades": summary["test_trades"]}
    row = register_model(config, db, promote=bool(summary["accepted"]), version=version, kind=KIND,
                         path=str(path), sha256=sha, training=training, metrics=metrics)
    return row.as_dict()


def _emit(args, summary: dict) -> None:
    from engine.app.report import console

    if json_summary(args, summary):
        return
    table = Table(title=f"Exit policies on held-out seeds {summary['test_seeds']} "
                        f"({summary['test_trades']} identical entries, {summary['symbol']})")
    for name in ("policy", "trades", "mean R", "Sharpe", "max DD R", "win", "hold s"):
        table.add_column(name, justify="left" if name == "policy" else "right")
    for name, m in summary["policies"].items():
        table.add_row(name.replace("_", " "), str(m["trades"]), f"{m['mean_r']:+.3f}", f"{m['sharpe']:+.3f}",
                      f"{m['max_dd_r']:.2f}", f"{m['win_rate']:.1%}", f"{m['mean_hold_s']:.1f}")
    out = console()
    out.print(table)
    out.print("mean R: net R per trade after fees and spread; Sharpe: mean / sd of per-trade R; max DD R: drawdown "
              "of the cumulative R; hold s: mean holding time")
    t = summary["paired_test"]
    out.print(f"paired test, agent - fixed bracket over {t['n']} trades: mean {t['mean_diff']:+.3f} R "
              f"(95% CI {t['ci95'][0]:+.3f} .. {t['ci95'][1]:+.3f}), bootstrap p {t['p_bootstrap']:.4f}, "
              f"Wilcoxon p {t['p_wilcoxon']:.4f}")
    if summary["command"] == "train exits":
        out.print(f"training: {summary['train_trades']} entries on seeds {summary['train_seeds']}, "
                  f"{summary['epochs']} epochs, {'converged' if summary['converged'] else 'not converged'}, "
                  f"{summary['visited_states']} states visited")
    else:
        out.print(f"evaluated {summary['model']['version']} (trained from {summary['model']['training'].get('source')}"
                  f", {summary['visited_states']} states visited)")
    if summary["on_policy"]:
        b, a = summary["on_policy"]["fixed_bracket"], summary["on_policy"]["q_agent"]
        out.print(f"on-policy check (the agent's exits inside the simulator): bracket {b['trades']} trades mean "
                  f"{b['mean_r']:+.3f} R, agent {a['trades']} trades mean {a['mean_r']:+.3f} R")
    out.print(f"decision: {summary['decision']} - {summary['reason']}")
    out.print(f"registered {summary['model']['version']} ({summary['model']['status']}, {summary['model']['mode']})")
    if summary["enable"]:
        out.print("enable it in runs with " + " ".join(f"--set {k}={str(v).lower() if v is True else v}"
                                                        for k, v in summary["enable"].items()))
    else:
        out.print("runs keep the fixed bracket (\\[execution] exit_agent = false)")
