"""Merge several feeds into one, and open feeds from files by sniffing what they hold.

``MergedFeed`` is a k-way merge (``heapq.merge``) on the replay key ``(ts_recv, instrument_id,
seq)`` taken after instrument ids are made unique.

Invariants:
- when the children's instrument ids are already unique they are kept, and no event is copied;
- otherwise every instrument gets a new id ``0..n-1`` in feed order (a feed's instruments in the
  order it lists them), and an event is rewritten with ``msgspec.structs.replace`` only when its id
  actually changes;
- a symbol already taken by an earlier instrument gets a suffix ``#2``, ``#3``, ... in the merged
  definitions (and in any ``InstrumentDef`` event the feed emits);
- ties on the full key keep feed order; each child's own order is preserved;
- ``stats()`` sums the children's integer counters key by key.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import ChimeraError, UsageError
from engine.events import Event, InstrumentDef, sort_key
from feeds.base import Feed
from feeds.paths import input_file
from feeds.tape import TapeFeed, is_parquet, read_head

LOBSTER_MESSAGE = re.compile(r"_message_(\d+)\.csv$")


class _Plan(msgspec.Struct, frozen=True):
    """How one child feed's instruments map into the merged feed."""

    ids: dict[int, int]  # old id -> new id, only for ids that change
    symbols: dict[int, str]  # new id -> new symbol, only for symbols that change
    known: frozenset[int]  # every id the child declared


def _plan(feeds: Sequence[Feed]) -> tuple[list[InstrumentDef], list[_Plan]]:
    """Merged instrument definitions and, per feed, the id and symbol rewrites they need."""
    per_feed = [feed.instruments() for feed in feeds]
    all_ids = [d.instrument_id for defs in per_feed for d in defs]
    renumber = len(set(all_ids)) != len(all_ids)
    merged: list[InstrumentDef] = []
    plans: list[_Plan] = []
    seen: Counter[str] = Counter()
    for defs in per_feed:
        ids: dict[int, int] = {}
        symbols: dict[int, str] = {}
        for definition in defs:
            new_id = len(merged) if renumber else definition.instrument_id
            seen[definition.symbol] += 1
            symbol = definition.symbol if seen[definition.symbol] == 1 else _suffixed(definition.symbol, seen)
            if new_id != definition.instrument_id:
                ids[definition.instrument_id] = new_id
            if symbol != definition.symbol:
                symbols[new_id] = symbol
            merged.append(_rewrite_def(definition, new_id, symbol))
        plans.append(_Plan(ids, symbols, frozenset(d.instrument_id for d in defs)))
    return merged, plans


def _suffixed(symbol: str, seen: Counter[str]) -> str:
    """``symbol#k`` for the k-th use of ``symbol``, skipping suffixed names already taken."""
    candidate = f"{symbol}#{seen[symbol]}"
    while seen[candidate]:
        seen[symbol] += 1
        candidate = f"{symbol}#{seen[symbol]}"
    seen[candidate] += 1
    return candidate


def _rewrite_def(definition: InstrumentDef, new_id: int, symbol: str) -> InstrumentDef:
    if new_id == definition.instrument_id and symbol == definition.symbol:
        return definition
    return msgspec.structs.replace(definition, instrument_id=new_id, symbol=symbol)


def _remapped(events: Iterator[Event], plan: _Plan, index: int) -> Iterator[Event]:
    """Rewrite a child's events per ``plan``; events whose id does not change pass through as is."""
    ids, symbols, known = plan.ids, plan.symbols, plan.known
    replace = msgspec.structs.replace
    for event in events:
        old = event.instrument_id
        new = ids.get(old, old)
        if new != old:
            event = replace(event, instrument_id=new)
        elif old not in known:
            raise ChimeraError(f"feed #{index} emitted instrument_id {old}, which its instruments() lacks")
        if symbols and type(event) is InstrumentDef and new in symbols:
            event = replace(event, symbol=symbols[new])
        yield event


class MergedFeed:
    """Several feeds replayed as one, in ``(ts_recv, instrument_id, seq)`` order with unique ids."""

    def __init__(self, feeds: Iterable[Feed]) -> None:
        """Plan the instrument remapping of ``feeds`` (their instruments are read now)."""
        self.feeds = list(feeds)
        self._instruments, self._plans = _plan(self.feeds)

    def instruments(self) -> list[InstrumentDef]:
        """The merged definitions, ids unique, colliding symbols suffixed."""
        return list(self._instruments)

    def events(self) -> Iterator[Event]:
        """Every child's events, remapped and merged in replay order."""
        streams = [self._stream(index) for index in range(len(self.feeds))]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=sort_key)

    def stats(self) -> dict[str, int]:
        """The children's integer counters summed key by key."""
        total: dict[str, int] = {}
        for feed in self.feeds:
            for key, value in feed.stats().items():
                if isinstance(value, int):
                    total[key] = total.get(key, 0) + value
        return total

    def _stream(self, index: int) -> Iterator[Event]:
        plan = self._plans[index]
        events = self.feeds[index].events()
        if not plan.ids and not plan.symbols:
            return _checked(events, plan.known, index)
        return _remapped(events, plan, index)


def _checked(events: Iterator[Event], known: frozenset[int], index: int) -> Iterator[Event]:
    """Pass events through, failing on an instrument the feed did not declare."""
    for event in events:
        if event.instrument_id not in known:
            raise ChimeraError(
                f"feed #{index} emitted instrument_id {event.instrument_id}, which its instruments() lacks"
            )
        yield event


FEED_FILES = "a chimera tape (.jsonl, .jsonl.gz, .jsonl.zst, .parquet), a LOBSTER message CSV or a Databento .dbn[.zst]"


def open_feed(path: str | Path, *, strict: bool = False, dbn: dict[str, Any] | None = None, **options: Any) -> Feed:
    """Open ``path`` as the feed its name or content says: a LOBSTER message CSV, a DBN file or a tape.

    ``strict`` applies to tapes (stop at the first malformed line); ``dbn`` goes to the DBN feed
    (``tick_size``, ``check_sequence``); ``options`` go to the LOBSTER feed (``reconcile``, ``symbol``,
    ``day``). A ``.csv`` named outside LOBSTER's scheme is read as a LOBSTER message file when
    ``symbol`` or ``day`` is given.

    Raises:
        UsageError: the file is missing, empty, a directory, or neither kind.
    """
    path = input_file(path, FEED_FILES)
    foreign_csv = path.suffix.lower() == ".csv" and bool(options.get("symbol") or options.get("day"))
    if LOBSTER_MESSAGE.search(path.name) or foreign_csv:
        # LOBSTER message file (``<TICKER>_<date>_<start>_<end>_message_<levels>.csv``); the LOBSTER
        # feed finds its orderbook file beside it.
        from feeds.lobster import LobsterFeed

        return LobsterFeed(path, **options)
    if path.name.lower().endswith(".parquet") or is_parquet(path):
        from feeds.parquet_tape import ParquetTapeFeed  # pyarrow is imported only for Parquet tapes

        return ParquetTapeFeed(path, strict=strict)  # names what is wrong if not a Parquet tape
    if path.name.endswith((".dbn", ".dbn.zst")) or read_head(path, 3) == b"DBN":
        from feeds.dbn import DbnFeed  # Databento DBN (plain or zstd)

        return DbnFeed(path, **(dbn or {}))
    if read_head(path, 64).lstrip().startswith(b"{"):
        return TapeFeed(path, strict=strict)  # its header check names line 1 if not a tape
    raise UsageError(
        f"{path}: not a recognised feed file (expected a chimera tape (JSON lines or Parquet), a Databento "
        ".dbn[.zst], or a LOBSTER message CSV named TICKER_YYYY-MM-DD_start_end_message_N.csv or given --symbol "
        "and --date)"
    )


def open_feeds(paths: Iterable[str | Path], *, strict: bool = False, dbn: dict[str, Any] | None = None,
               **options: Any) -> Feed:
    """Open every path with ``open_feed``; several feeds are merged into one ``MergedFeed``."""
    feeds = [open_feed(path, strict=strict, dbn=dbn, **options) for path in paths]
    if not feeds:
        raise UsageError("no feed files given")
    return feeds[0] if len(feeds) == 1 else MergedFeed(feeds)
