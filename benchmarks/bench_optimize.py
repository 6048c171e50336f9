"""Optimiser throughput: trials per minute of one fixed small study with 1 and 2 workers.

The study: 8 trials (population 4, sampler seed 1) of the shipped configuration's genes for AAPL, each
trial one simulated session (seed 1, 2 minutes). The same study runs serially and on a pool of two
spawned workers (the pool's start-up included: it is part of what a user waits for); both give the
same trials (tested), so only the wall time differs. The speed-up target is 1.6x on 2 cores.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks.common import emit, result
from engine.config import Config
from engine.pipeline.evaluation import Dataset, evaluate
from ml import optimize
from ml.executors import make_executor

TRIALS, POPULATION, MINUTES = 8, 4, 2.0


def study_minutes(workers: int) -> float:
    """Wall minutes of the fixed study with ``workers`` workers."""
    config = Config()
    genes = optimize.genes_for(config.strategies.enabled)
    settings = optimize.Settings(symbol="AAPL", seeds=(1,), minutes=MINUTES, tapes=(), holdout_seeds=(2,), seed=1,
                                 population=POPULATION, min_trades=1, genes=tuple(g.key for g in genes),
                                 config_hash=config.hash())
    dataset = Dataset(config=config, symbol="AAPL", seeds=(1,), minutes=MINUTES)
    with tempfile.TemporaryDirectory() as tmp:
        study = optimize.create_study(str(Path(tmp) / "study.db"), "bench", settings)
        start = time.perf_counter()
        executor = make_executor("local", workers)
        try:
            optimize.run_study(study, settings, evaluate, dataset, TRIALS, executor)
        finally:
            executor.close()
        return (time.perf_counter() - start) / 60


def run() -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    one, two = study_minutes(1), study_minutes(2)
    note = f"{TRIALS} trials, population {POPULATION}, AAPL seed 1, {MINUTES:g} simulated min each"
    return [
        result("optimize trials/min, 1 worker", round(TRIALS / one, 2), "trials/min", None, note=note),
        result("optimize trials/min, 2 workers", round(TRIALS / two, 2), "trials/min", None, note=note),
        result("optimize speed-up, 2 workers", round(one / two, 2), "x", 1.6, note="same study, same trials"),
    ]


if __name__ == "__main__":
    out = run()
    if "--json" in sys.argv:
        emit(out)
    else:
        for row in out:
            print(row)
