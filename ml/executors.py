"""Where the optimiser's evaluations run: in this process, a local process pool, or a Ray cluster.

Each executor maps a pure, picklable function over argument tuples and returns the results in the
order of the arguments, so a study's trials are identical whichever executor ran them (the sampler
asks and is told in the main process, in trial order). The pool uses ``spawn`` workers (no state
inherited from the parent), replaced by a fresh pool between generations every ``recycle_after``
evaluations a worker, which bounds the memory a long study can accumulate in a worker. Ray is an
optional extra (``pip install .[distributed]``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

from engine.errors import UsageError

R = TypeVar("R")


class Executor(Protocol):
    name: str
    workers: int

    def map(self, fn: Callable[..., R], calls: Sequence[tuple]) -> list[R]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Every call in this process, one after the other."""

    name = "serial"
    workers = 1

    def map(self, fn: Callable[..., R], calls: Sequence[tuple]) -> list[R]:
        return [fn(*args) for args in calls]

    def close(self) -> None:
        pass


class PoolExecutor:
    """A local pool of ``workers`` spawned processes, replaced by a fresh pool between two ``map`` calls once
    it has run ``recycle_after`` calls a worker (bounding what a long study accumulates in a worker).

    The recycling is done here, not with ``ProcessPoolExecutor(max_tasks_per_child=...)``: on Python 3.11
    to 3.13 before their 2026 fixes (CPython gh-115634) a worker leaving at that limit while calls are
    queued is not replaced and the pool hangs for ever; ``chimera optimize --workers 2`` hung that way in
    its perturbation runs.
    """

    name = "pool"

    def __init__(self, workers: int, recycle_after: int = 16) -> None:
        self.workers = workers
        self.recycle_after = recycle_after
        self.calls = 0  # calls run by the current pool
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn: Callable[..., R], calls: Sequence[tuple]) -> list[R]:
        if self.calls >= self.recycle_after * self.workers:
            self.pool.shutdown(wait=True)
            self.pool = self._new_pool()
            self.calls = 0
        futures = [self.pool.submit(fn, *args) for args in calls]
        results = [f.result() for f in futures]
        self.calls += len(calls)
        return results

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """The same calls as Ray tasks: on a local Ray started here, or on the cluster at ``address``
    (``auto``: the cluster this machine belongs to; ``HOST:PORT``: its head node). A Ray already
    initialised in this process (``ray.init(...)`` by the caller) is used as it is."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'chimera[distributed]'") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=workers if address is None else None, include_dashboard=False,
                     log_to_driver=False)
            self.started = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self.remote: dict[Callable, object] = {}

    def map(self, fn: Callable[..., R], calls: Sequence[tuple]) -> list[R]:
        remote = self.remote.get(fn)
        if remote is None:
            remote = self.remote[fn] = self.ray.remote(fn)
        return self.ray.get([remote.remote(*args) for args in calls])  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(kind: str, workers: int, address: str | None = None) -> Executor:
    """``local`` with 1 worker: serial; ``local`` with more: a process pool; ``ray``: Ray."""
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if kind == "ray":
        return RayExecutor(address, workers)
    if address is not None:
        raise UsageError("--address applies to --executor ray only")
    return SerialExecutor() if workers == 1 else PoolExecutor(workers)
