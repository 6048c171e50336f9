"""The compiled per-event kernel (engine/kernel) on the AMZN level-5 day, beside its Python reference.

The day is imported once to a Parquet tape and read as column batches (one per row group). Timed,
each as the median of ``REPEATS`` runs of the same work:
- reading the tape into column batches (no event objects);
- the kernel's book alone, sampled at every 1-s bar close (``KernelBook.bars``);
- the kernel's lane: book, trade flow, OFI, time-weighted spread, swing structure and the sweep
  detector, sampled at every 1-s bar close and at each detection (``KernelLane.run``);
- the reference for that lane: ``MarketState`` with ``OrderBook``, ``TradeFlow``,
  ``OrderFlowImbalance``, ``SpreadTime``, ``SwingStructure`` and ``SweepDetector`` over the same
  events (already decoded), the same samples and detections.
Start-up: a fresh interpreter importing the kernel and running a one-event batch, with the compiled
functions already in numba's cache (the second run of a machine).
The kernel is not yet the pipeline's path (issue 16): these rows time the kernel's own loops.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import main, result
from engine.book import OrderBook
from engine.config.detectors import SweepParams
from engine.detectors.base import DetectorContext
from engine.detectors.sweep import SweepDetector
from engine.events import InstrumentDef
from engine.features.flow import TradeFlow
from engine.features.ofi import OrderFlowImbalance
from engine.features.shape import SpreadTime
from engine.features.structure import SwingStructure
from engine.kernel.book import KernelBook
from engine.kernel.lane import KernelLane
from engine.market import MarketState, Watermark
from feeds.lobster import import_lobster, locate_sample
from feeds.parquet_tape import ParquetTapeFeed

REPEATS = 5
ROOT = Path(__file__).resolve().parent.parent
STARTUP = ("import time; t = time.perf_counter(); from engine.kernel.book import KernelBook; "
           "from engine.kernel.lane import KernelLane; from engine.kernel.columns import from_events; "
           "from engine.events import OrderAdd; "
           "KernelLane(KernelBook(0)).run(from_events([OrderAdd(0, 1, 1, 0, 128, 1, 1, 100, 5)]), 2); "
           "print(time.perf_counter() - t)")


def median_rate(n: int, fn: Callable[[], object]) -> tuple[float, float, float]:
    """Median, min and max events/s over ``REPEATS`` runs of ``fn``."""
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def startup_s() -> float:
    """Wall time of the second fresh start (the first may fill numba's cache)."""
    times = [float(subprocess.run([sys.executable, "-c", STARTUP], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout) for _ in range(2)]
    return times[-1]


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        message, orderbook = locate_sample(5)
        path = Path(tmp) / "amzn5.parquet"
        import_lobster(message, orderbook, path)
        feed = ParquetTapeFeed(path)
        inst: InstrumentDef = feed.instruments()[0]
        iid = inst.instrument_id
        batches = list(feed.kernel_batches())
        event_batches = list(feed.batches())
        n = sum(len(b) for b in batches)
        marks = [int(b.ts_recv[-1]) for b in batches]
        read = median_rate(n, lambda: list(feed.kernel_batches()))

    def book_alone() -> None:
        book = KernelBook(iid)
        for batch, mark in zip(batches, marks, strict=True):
            book.bars(batch, mark)

    def lane() -> None:
        kernel = KernelLane(KernelBook(iid), sweep=SweepParams())
        for batch, mark in zip(batches, marks, strict=True):
            kernel.run(batch, mark)

    def reference() -> None:
        book = OrderBook(iid)
        market = MarketState(inst, book, [TradeFlow((5.0, 30.0)), OrderFlowImbalance(book), SpreadTime(book, 10.0),
                                          SwingStructure(book)])
        market.add(SweepDetector(DetectorContext(inst, book, market.detected), SweepParams()))
        for events in event_batches:
            market.apply([*events, Watermark(events[-1].ts_recv)])

    lane()  # loads the compiled functions (from numba's cache after the first run on a machine)
    book_alone()
    rows = []
    for name, fn, target, what in (
        ("kernel: book alone, 1-s bar samples", book_alone, None, "KernelBook.bars"),
        ("kernel: book + trade flow + OFI + spread + swings + sweep detector, bar and detection samples", lane,
         2_000_000, "KernelLane.run; the other detectors and accumulators are not in the kernel yet"),
        ("reference: the same lane in Python (MarketState, OrderBook, four accumulators, SweepDetector)",
         reference, None, "events decoded beforehand; the pipeline's market stage runs this code"),
    ):
        median, low, high = median_rate(n, fn)
        rows.append(result(f"{name} (AMZN L5 day)", round(median), "events/s", target,
                           note=f"{n:,} events, {len(batches)} column batches; {what}; median of {REPEATS} "
                                f"(range {low:,.0f}-{high:,.0f})"))
    rows.append(result("Parquet tape -> column batches (AMZN L5 day)", round(read[0]), "events/s", None,
                       note=f"ParquetTapeFeed.kernel_batches, no event objects; median of {REPEATS}"))
    rows.append(result("kernel start-up, compiled functions cached", round(startup_s(), 3), "s", 2.0,
                       higher_is_better=False,
                       note="fresh interpreter: import the kernel, run a one-event batch (second start)"))
    return rows


if __name__ == "__main__":
    main(run)
