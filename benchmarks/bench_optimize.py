"""Optimiser throughput: trials per minute of one fixed small study with 1 and 2 workers.

The study: 32 trials (population 8, sampler seed 1) of the shipped configuration's genes for AAPL, each
trial one simulated session (seed 1) of 10 minutes (the command's default is six sessions of 60 minutes,
36 times the work a trial; the short trial keeps 5 pairs of studies within a few minutes and weighs the
pool's start-up more, not less). (An earlier study of 8 two-minute trials measured mostly the workers'
start-up: a spawned worker imports the engine in about 1 s, more than that study's whole serial CPU
time, so it read 0.38x.)
The same study runs serially and on a pool of two spawned workers (the pool's start-up included: it
is part of what a user waits for); both give the same trials (tested), so only the wall time differs.
The speed-up target is 1.6x on 2 cores.

The per-trial cost split: each trial's evaluation measures its own CPU seconds by part (simulation,
features and detectors, strategies, execution, other; ``Metrics.cpu_s``, kept by the study as the trial's
``cpu_s``); the rows give each part's share of the serial study's summed evaluation CPU time, and the
mean CPU seconds of a trial.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks.common import emit, result
from engine.config import Config
from engine.pipeline.evaluation import Dataset, evaluate
from engine.pipeline.run import COST_PARTS
from ml import optimize
from ml.executors import make_executor

TRIALS, POPULATION, MINUTES = 32, 8, 10.0
PAIRS = 5  # one study takes 10-20 s, so the machine's noise moves a single ratio by +-0.15


def study_minutes(workers: int) -> tuple[float, dict[str, float]]:
    """Wall minutes of the fixed study with ``workers`` workers, and its trials' CPU seconds by part."""
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
        minutes = (time.perf_counter() - start) / 60
        cpu = dict.fromkeys((*COST_PARTS, "total"), 0.0)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            for part, seconds in trial.user_attrs["cpu_s"].items():
                cpu[part] += seconds
        return minutes, cpu


def run() -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ones, twos, ratios = [], [], []
    cpu: dict[str, float] = {}
    for _ in range(PAIRS):  # 1 worker then 2, pair by pair: the ratio of a pair shares the machine's state
        one, cpu = study_minutes(1)
        two, _ = study_minutes(2)
        ones.append(one)
        twos.append(two)
        ratios.append(one / two)
    one, two, ratio = statistics.median(ones), statistics.median(twos), statistics.median(ratios)
    note = f"{TRIALS} trials, population {POPULATION}, AAPL seed 1, {MINUTES:g} simulated min each"
    split = "share of the serial study's evaluation CPU time, measured inside each evaluation"
    total = cpu["total"] or 1.0
    return [
        result("optimize trials/min, 1 worker", round(TRIALS / one, 2), "trials/min", None,
               note=f"{note}; median of {PAIRS} studies"),
        result("optimize trials/min, 2 workers", round(TRIALS / two, 2), "trials/min", None,
               note=f"{note}; median of {PAIRS} studies"),
        result("optimize speed-up, 2 workers", round(ratio, 2), "x", 1.6,
               note=f"same study, same trials; median of {PAIRS} pairs (1 worker, then 2), per pair "
                    + ", ".join(f"{r:.2f}" for r in ratios)),
        result("optimize CPU per trial", round(cpu["total"] / TRIALS, 3), "s", None, higher_is_better=False,
               note=note),
        *(result(f"optimize trial cost: {part}", round(100 * cpu[part] / total, 1), "%", None,
                 higher_is_better=False, note=split) for part in COST_PARTS),
    ]


if __name__ == "__main__":
    out = run()
    if "--json" in sys.argv:
        emit(out)
    else:
        for row in out:
            print(row)
