"""Book core throughput on the AMZN level-5 LOBSTER day: synchronous, no event loop.

Events are parsed once into memory; only ``OrderBook.update`` (state only) and ``OrderBook.apply``
(state plus a BookView at every LAST boundary, as the book stage runs it) are timed.
"""

from __future__ import annotations

from benchmarks.common import best_of, main, result
from engine.book import OrderBook
from feeds.lobster import LobsterFeed, locate_sample


def run() -> list[dict]:
    message, _ = locate_sample(5)
    events = list(LobsterFeed(message).events())
    n = len(events)

    def update_only() -> None:
        book = OrderBook(0)
        update = book.update
        for ev in events:
            update(ev)

    def apply_batches() -> None:
        book = OrderBook(0)
        for i in range(0, n, 256):
            book.apply(events[i:i + 256])

    t_update = best_of(5, update_only)
    t_apply = best_of(5, apply_batches)
    return [
        result("book core update (AMZN L5 day)", round(n / t_update), "events/s", 1_000_000,
               note=f"{n:,} events, OrderBook.update"),
        result("book stage apply with views (AMZN L5 day)", round(n / t_apply), "events/s", None,
               note="OrderBook.apply, batches of 256, BookView per LAST"),
    ]


if __name__ == "__main__":
    main(run)
