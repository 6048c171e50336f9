"""Databento DBN records -> Chimera events (SPEC section 1): MBO (L3), MBP-10 (L2) and trades.

``RecordMapper.map`` takes the columns of a batch of records of one schema (numpy arrays in the
package's own record layout) and appends the events they mean, in file order. An MBO record such as
``MboMsg { instrument_id: 4916, order_id: 6413364814613, price: 5560.000000000, size: 1,
flags: LAST, action: 'A', side: 'B', sequence: 95434 }`` becomes, with a tick size of 0.25,
``OrderAdd(instrument_id=4916, order_id=6413364814613, side=BUY, price=22240, size=1, flags=LAST)``.

MBO, action by action (Databento's book changes only on A, C, M and R; T and F "do not affect the
book because all fills will be accompanied by cancel actions"):
- ``A`` OrderAdd; ``M`` OrderModify; ``T`` Trade with ``aggressor`` = the record's side;
- ``F`` no event: the filled size is remembered per order, and the ``C`` that removes it becomes an
  ``OrderExecute`` (any size beyond the fill stays an ``OrderCancel``), so the book shrinks once and
  downstream tells executions from cancels; a plain ``C`` is an ``OrderCancel``;
- ``R`` (clear) an empty, complete ``BookSnapshot``: the book is emptied and known again, which also
  ends a STALE state; ``N`` no event.
- Snapshots: Databento streams an MBO snapshot as ``R`` followed by one ``A`` per resting order, all
  flagged ``F_SNAPSHOT``, the last ``F_LAST``. They stay L3 events (the empty snapshot of ``R``, then
  an ``OrderAdd`` flagged SNAPSHOT per order, in queue order) rather than being assembled into one
  ``BookSnapshot``, whose levels would lose every order id and queue position. A run of F_SNAPSHOT
  records that does not start with ``R`` (files from before February 2024) gets the empty snapshot
  in front of it.

MBP-10: an instrument's first record, any ``R`` or F_SNAPSHOT record, and the first record after a
gap become a ``BookSnapshot`` of the record's ten levels per side (``complete=False``); every other
record becomes one ``BookDelta`` per level of the top ten that changed (ADD, UPDATE, or DELETE for a
price that left the top ten), so the book holds exactly the record's ten levels after each record.
Action ``T`` also yields a Trade. Trades schema: one ``Trade`` per record.

Invariants:
- F_LAST, F_SNAPSHOT and F_BAD_TS_RECV keep their bits (LAST, SNAPSHOT and BAD_TS have DBN's values);
  every other DBN flag is dropped. LAST is on the last event a record yields; when a record with
  F_LAST yields none (``N``, ``F``, an MBP-10 record that changes nothing), LAST moves onto the
  latest event of that instrument still waiting for it, so no book view is lost. Events are held
  back (``take``) only while such a LAST may still come; ``finish`` closes what is left.
- ``seq`` counts each instrument's events from 0. A gap skips one number, so the book marks the
  instrument STALE until the next snapshot. A gap is a record flagged F_MAYBE_BAD_BOOK (Databento's
  "unrecoverable gap in the channel") or, with ``check_sequence``, a venue ``sequence`` that skips
  numbers for the instrument (equal numbers are one venue packet; 0 means none; snapshot records
  are not checked and restart the check; a number going back is counted as a reset, not a gap).
- Prices are int64 units of 1e-9: ``ticks = price // units_per_tick``; a price off the tick grid
  is an error naming the record and field, never rounded. An undefined price (``UNDEF_PRICE``) is
  an error on A, C, M and F records, skipped and counted on a trade, ignored elsewhere.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
import numpy as np
from databento_dbn import UNDEF_PRICE

from engine.errors import UsageError
from engine.events import (
    ADD,
    BAD_TS,
    BUY,
    DELETE,
    LAST,
    NO_SIDE,
    SELL,
    SNAPSHOT,
    UPDATE,
    BookDelta,
    BookSnapshot,
    Event,
    OrderAdd,
    OrderCancel,
    OrderExecute,
    OrderModify,
    Trade,
)

F_MAYBE_BAD_BOOK = 0x04  # DBN flag bit: an unrecoverable gap was detected in the channel
KEPT_FLAGS = LAST | SNAPSHOT | BAD_TS  # the same bits as DBN's F_LAST, F_SNAPSHOT, F_BAD_TS_RECV
NO_PRICE = -(1 << 62)  # ticks of an undefined price inside a batch
LEVELS = 10  # MBP-10 depth
SIDE = 3 * LEVELS  # columns of one side in a level block: prices, sizes, counts
MAX_HELD = 1 << 16  # events held back waiting for a LAST before they are released without it
SIDES = {b"B": BUY, b"A": SELL, b"N": NO_SIDE}
SCHEMAS = ("mbo", "mbp-10", "trades")


class DbnError(UsageError):
    """A DBN file that cannot be replayed; the message names the file and, when known, the record."""


def record_error(path: object, record: int, field: str, problem: str) -> DbnError:
    """The one-line error about ``field`` of record number ``record`` (1-based, after the metadata)."""
    return DbnError(f"{path}: record {record}: field {field!r}: {problem}")


def decimal_price(raw: int) -> str:
    """A DBN fixed-point price as a decimal string (``5000250000000`` -> ``'5000.25'``)."""
    return format(Decimal(raw).scaleb(-9).normalize(), "f")


class RecordMapper:
    """Maps batches of one schema's record columns to events, keeping per-instrument state.

    Args:
        path: the file (for error messages).
        schema: ``mbo``, ``mbp-10`` or ``trades``.
        units_per_tick: per instrument id, DBN price units (1e-9) in one tick.
        check_sequence: count gaps in the venue ``sequence`` per instrument (else only F_MAYBE_BAD_BOOK).
        symbols: per instrument id, its symbol (for error messages).
    """

    def __init__(self, path: object, schema: str, units_per_tick: dict[int, int], check_sequence: bool,
                 symbols: dict[int, str] | None = None) -> None:
        if schema not in SCHEMAS:
            raise DbnError(f"{path}: schema {schema!r} is not supported (supported: {', '.join(SCHEMAS)})")
        self.path = path
        self.schema = schema
        self.units = units_per_tick
        self.check_sequence = check_sequence
        self.symbols = symbols or {}
        self.events: list[Event] = []
        self.stats = {"records": 0, "events": 0, "gaps": 0, "sequence_gaps": 0, "bad_book_flags": 0,
                      "sequence_resets": 0, "snapshots": 0, "trades": 0, "executions": 0,
                      "trades_without_price": 0}
        self._open: dict[int, int] = {}  # instrument -> index in events of its latest event without LAST
        self._seq: dict[int, int] = {}  # instrument -> next seq
        self._venue: dict[int, int] = {}  # instrument -> last venue sequence
        self._in_snapshot: set[int] = set()  # instruments inside a run of F_SNAPSHOT records (MBO)
        self._fills: dict[int, dict[int, int]] = {}  # instrument -> order id -> filled size awaiting its cancel
        self._levels: dict[int, np.ndarray] = {}  # MBP-10: instrument -> level block row of its last record

    # ---- batches ----------------------------------------------------------------------------------
    def map(self, records: np.ndarray, first: int) -> None:
        """Append the events of ``records`` (a structured array) whose first record is number ``first``."""
        self.stats["records"] += len(records)
        if self.schema == "mbo":
            self._mbo(records, first)
        elif self.schema == "mbp-10":
            self._mbp10(records, first)
        else:
            self._trades(records, first)

    def take(self) -> list[Event]:
        """The events no later record can change (those before any instrument's open event)."""
        events = self.events
        cut = min(self._open.values(), default=len(events))
        if len(events) - cut > MAX_HELD:  # a source that never sets F_LAST: do not hold the file in memory
            cut = len(events)
            self._open.clear()
        if cut == 0:
            return []
        self.events = events[cut:]
        if self._open:
            self._open = {iid: index - cut for iid, index in self._open.items()}
        self.stats["events"] += cut
        return events[:cut]

    def finish(self) -> list[Event]:
        """End of file: every open event is closed (LAST on its latest event); the rest is released."""
        for iid in list(self._open):
            self._close(iid)
        self.stats["events"] += len(self.events)
        events, self.events = self.events, []
        return events

    # ---- shared steps -----------------------------------------------------------------------------
    def _ticks(self, prices: np.ndarray, ids: np.ndarray, first: int, field: str) -> np.ndarray:
        """``prices`` (rows, or rows x levels) in ticks; undefined prices become ``NO_PRICE``."""
        unique, where = np.unique(ids, return_inverse=True)
        per_row = np.array([self.units[int(i)] for i in unique], dtype=np.int64)[where]
        if prices.ndim == 2:
            per_row = per_row[:, None]
        defined = prices != UNDEF_PRICE
        off_grid = defined & (prices % per_row != 0)
        if off_grid.any():
            row, column = np.argwhere(off_grid)[0] if prices.ndim == 2 else (int(np.argmax(off_grid)), None)
            name = field if column is None else f"{field}_{int(column):02d}"
            value = int(prices[row] if column is None else prices[row, column])
            tick = decimal_price(int(per_row[row] if column is None else per_row[row, 0]))
            iid = int(ids[row])
            symbol = self.symbols.get(iid, "SYMBOL")
            raise record_error(self.path, first + int(row), name,
                               f"price {decimal_price(value)} is not a whole number of ticks of {tick} "
                               f"({symbol}, instrument {iid}); set [instruments.{symbol}] tick_size or pass "
                               "--tick-size")
        return np.where(defined, prices // per_row, NO_PRICE)

    def _gap(self, iid: int, sequence: int, flags: int, snapshot: bool) -> bool:
        """Count a gap before this record (F_MAYBE_BAD_BOOK, or a skipped venue sequence) and pass it on."""
        gap = False
        if flags & F_MAYBE_BAD_BOOK:
            self.stats["bad_book_flags"] += 1
            gap = True
        if snapshot:
            self._venue.pop(iid, None)
        elif self.check_sequence and sequence:
            last = self._venue.get(iid)
            if last is not None:
                if sequence > last + 1:
                    self.stats["sequence_gaps"] += 1
                    gap = True
                elif sequence < last:
                    self.stats["sequence_resets"] += 1
            self._venue[iid] = sequence
        if gap:
            self.stats["gaps"] += 1
            self._seq[iid] = self._seq.get(iid, 0) + 1
        return gap

    def _next_seq(self, iid: int) -> int:
        seq = self._seq.get(iid, 0)
        self._seq[iid] = seq + 1
        return seq

    def _end_record(self, iid: int, produced: int, flags: int) -> None:  # the MBO loop inlines this
        """Record ``iid``'s open event after a record that yielded ``produced`` events."""
        if flags & LAST:
            if produced:
                self._open.pop(iid, None)
            else:
                self._close(iid)
        elif produced:
            self._open[iid] = len(self.events) - 1

    def _close(self, iid: int) -> None:
        """Put LAST on the instrument's latest event that still lacks it."""
        index = self._open.pop(iid, None)
        if index is not None:
            event = self.events[index]
            self.events[index] = msgspec.structs.replace(event, flags=event.flags | LAST)

    def _side(self, code: bytes, record: int, book: bool) -> int:
        side = SIDES.get(code)
        if side is None or (book and side == NO_SIDE):
            raise record_error(self.path, record, "side", f"{code.decode(errors='replace')!r} is not a side "
                               f"{'of a resting order (B or A)' if book else '(B, A or N)'}")
        return side

    # ---- MBO --------------------------------------------------------------------------------------
    def _mbo(self, r: np.ndarray, first: int) -> None:
        ids = r["instrument_id"]
        actions = r["action"]
        price_ticks = self._ticks(r["price"], ids, first, "price")
        needs_price = np.isin(actions, [b"A", b"C", b"M", b"F"]) & (price_ticks == NO_PRICE)
        if needs_price.any():
            row = int(np.argmax(needs_price))
            raise record_error(self.path, first + row, "price",
                               f"undefined price on an {actions[row].decode()!r} record")
        columns = zip(ids.tolist(), r["ts_event"].tolist(), r["ts_recv"].tolist(), r["flags"].tolist(),
                      actions.tolist(), r["side"].tolist(), price_ticks.tolist(), r["size"].tolist(),
                      r["order_id"].tolist(), r["sequence"].tolist(), strict=True)
        events, seqs, venue, opened = self.events, self._seq, self._venue, self._open
        append, check = events.append, self.check_sequence
        for number, (iid, te, tr, dbn_flags, action, side_code, price, size, oid, sequence) in enumerate(
                columns, first):  # noqa: C901 - the hot loop, kept in one piece
            snap = dbn_flags & SNAPSHOT
            if dbn_flags & (SNAPSHOT | F_MAYBE_BAD_BOOK):
                self._gap(iid, sequence, dbn_flags, bool(snap))
            elif check and sequence:
                last = venue.get(iid)
                if last is not None and (sequence == last or sequence == last + 1):
                    venue[iid] = sequence
                else:
                    self._gap(iid, sequence, dbn_flags, False)
            flags = dbn_flags & KEPT_FLAGS
            before = len(events)
            if snap:
                if iid not in self._in_snapshot:
                    self._in_snapshot.add(iid)
                    if action != b"R":
                        self._clear(iid, te, tr, flags & ~LAST)
            elif self._in_snapshot:
                self._in_snapshot.discard(iid)
            side = SIDES.get(side_code)
            if action == b"A" or action == b"M":
                if not side:
                    self._side(side_code, number, True)
                seq = seqs.get(iid, 0)
                seqs[iid] = seq + 1
                kind = OrderAdd if action == b"A" else OrderModify
                append(kind(iid, te, tr, seq, flags, oid, side, price, size))
            elif action == b"C":
                if not side:
                    self._side(side_code, number, True)
                fills = self._fills.get(iid)
                if fills and oid in fills:
                    self._execute(iid, te, tr, flags, side, price, size, oid, fills)
                else:
                    seq = seqs.get(iid, 0)
                    seqs[iid] = seq + 1
                    append(OrderCancel(iid, te, tr, seq, flags, oid, side, price, size))
            elif action == b"T":
                if side is None:
                    self._side(side_code, number, False)
                self._trade(iid, te, tr, flags, price, size, side)
            elif action == b"F":
                if not side:
                    self._side(side_code, number, True)
                if oid:
                    fills = self._fills.setdefault(iid, {})
                    fills[oid] = fills.get(oid, 0) + size
            elif action == b"R":
                self._clear(iid, te, tr, flags)
            elif action != b"N":
                raise record_error(self.path, number, "action",
                                   f"{action.decode(errors='replace')!r} is not an MBO action (A, C, M, R, T, F, N)")
            if flags & LAST:
                if len(events) == before:
                    self._close(iid)
                elif opened:
                    opened.pop(iid, None)
            elif len(events) > before:
                opened[iid] = len(events) - 1

    def _clear(self, iid: int, te: int, tr: int, flags: int) -> None:
        """The book of ``iid`` is emptied and known again (an empty, complete snapshot)."""
        self.events.append(BookSnapshot(iid, te, tr, self._next_seq(iid), flags, (), (), 0, True))
        self._fills.pop(iid, None)
        self.stats["snapshots"] += 1

    def _execute(self, iid: int, te: int, tr: int, flags: int, side: int, price: int, size: int, oid: int,
                 fills: dict[int, int]) -> None:
        """The cancel that removes what an earlier fill of the order took: an execution, then any rest cancelled."""
        filled = fills.pop(oid)
        executed = min(filled, size)
        if filled > executed:
            fills[oid] = filled - executed
        if executed:
            last = flags if executed == size else flags & ~LAST
            self.events.append(OrderExecute(iid, te, tr, self._next_seq(iid), last, oid, side, price, executed))
            self.stats["executions"] += 1
        if size > executed or not executed:
            self.events.append(OrderCancel(iid, te, tr, self._next_seq(iid), flags, oid, side, price,
                                           size - executed))

    def _trade(self, iid: int, te: int, tr: int, flags: int, price: int, size: int, aggressor: int) -> None:
        if price == NO_PRICE:
            self.stats["trades_without_price"] += 1
            return
        self.events.append(Trade(iid, te, tr, self._next_seq(iid), flags, price, size, aggressor))
        self.stats["trades"] += 1

    # ---- MBP-10 -----------------------------------------------------------------------------------
    def _mbp10(self, r: np.ndarray, first: int) -> None:
        ids = r["instrument_id"]
        block = self._level_block(r, ids, first)
        previous, fresh = self._previous_levels(ids, block)
        changes = (_side_changes(BUY, block[:, :SIDE], previous[:, :SIDE]),
                   _side_changes(SELL, block[:, SIDE:], previous[:, SIDE:]))
        trade_ticks = self._ticks(r["price"], ids, first, "price")
        columns = zip(ids.tolist(), r["ts_event"].tolist(), r["ts_recv"].tolist(), r["flags"].tolist(),
                      r["action"].tolist(), r["side"].tolist(), trade_ticks.tolist(), r["size"].tolist(),
                      r["sequence"].tolist(), fresh.tolist(), strict=True)
        events, seqs = self.events, self._seq
        for row, (iid, te, tr, dbn_flags, action, side_code, price, size, sequence, new) in enumerate(columns):
            number = first + row
            snap = bool(dbn_flags & SNAPSHOT) or action == b"R"
            gapped = self._gap(iid, sequence, dbn_flags, snap)
            flags = dbn_flags & KEPT_FLAGS
            before = len(events)
            is_trade = action == b"T"
            inner = flags & ~LAST if is_trade else flags
            if new or snap or gapped:
                bids, asks = _book_sides(block[row].tolist())
                events.append(BookSnapshot(iid, te, tr, self._next_seq(iid), inner, bids, asks, LEVELS, False))
                self.stats["snapshots"] += 1
            else:
                moves = changes[0].get(row, []) + changes[1].get(row, [])
                seq = seqs.get(iid, 0)
                for index, (side, level_price, level_size, kind, count) in enumerate(moves, 1):
                    level_flags = inner if index == len(moves) else inner & ~LAST
                    events.append(BookDelta(iid, te, tr, seq, level_flags, side, level_price, level_size, kind,
                                            count))
                    seq += 1
                seqs[iid] = seq
            if is_trade:
                self._trade(iid, te, tr, flags, price, size, self._side(side_code, number, False))
            elif action not in (b"A", b"C", b"M", b"R", b"N"):
                raise record_error(self.path, number, "action",
                                   f"{action.decode(errors='replace')!r} is not an MBP action (A, C, M, R, T, N)")
            self._end_record(iid, len(events) - before, flags)
        last_rows = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
        for row in last_rows.tolist():
            self._levels[int(ids[row])] = block[row].copy()

    def _level_block(self, r: np.ndarray, ids: np.ndarray, first: int) -> np.ndarray:
        """Rows of ``[bid prices, bid sizes, bid counts, ask prices, ask sizes, ask counts]`` (ten each, ticks);
        an empty level is ``(NO_PRICE, 0, 0)``."""
        columns = []
        for side in ("bid", "ask"):
            prices = self._ticks(np.stack([r[f"{side}_px_{i:02d}"] for i in range(LEVELS)], axis=1), ids, first,
                                 f"{side}_px")
            sizes = np.stack([r[f"{side}_sz_{i:02d}"] for i in range(LEVELS)], axis=1).astype(np.int64)
            counts = np.stack([r[f"{side}_ct_{i:02d}"] for i in range(LEVELS)], axis=1).astype(np.int64)
            empty = (prices == NO_PRICE) | (sizes == 0)
            columns += [np.where(empty, NO_PRICE, prices), np.where(empty, 0, sizes), np.where(empty, 0, counts)]
        return np.concatenate(columns, axis=1)

    def _previous_levels(self, ids: np.ndarray, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each record's previous levels (same instrument, this batch or the last) and whether it has none."""
        order = np.argsort(ids, kind="stable")
        starts = np.ones(len(ids), dtype=bool)
        starts[1:] = ids[order][1:] != ids[order][:-1]
        before = np.empty(len(ids), dtype=np.int64)
        before[order] = np.where(starts, -1, np.concatenate(([-1], order[:-1])))
        previous = block[np.maximum(before, 0)]
        fresh = np.zeros(len(ids), dtype=bool)
        for row in np.flatnonzero(before < 0).tolist():
            stored = self._levels.get(int(ids[row]))
            if stored is None:
                fresh[row] = True
            else:
                previous[row] = stored
        return previous, fresh

    # ---- trades -----------------------------------------------------------------------------------
    def _trades(self, r: np.ndarray, first: int) -> None:
        ids = r["instrument_id"]
        price_ticks = self._ticks(r["price"], ids, first, "price")
        columns = zip(ids.tolist(), r["ts_event"].tolist(), r["ts_recv"].tolist(), r["flags"].tolist(),
                      r["side"].tolist(), price_ticks.tolist(), r["size"].tolist(), r["sequence"].tolist(),
                      strict=True)
        events = self.events
        for number, (iid, te, tr, dbn_flags, side_code, price, size, sequence) in enumerate(columns, first):
            self._gap(iid, sequence, dbn_flags, bool(dbn_flags & SNAPSHOT))
            flags = dbn_flags & KEPT_FLAGS
            before = len(events)
            self._trade(iid, te, tr, flags, price, size, self._side(side_code, number, False))
            self._end_record(iid, len(events) - before, flags)


def _book_sides(row: list[int]) -> tuple[tuple, tuple]:
    """The ``(price, size, count)`` levels of each side of one level block row (empty levels left out)."""
    bids = tuple([level for level in zip(row[0:10], row[10:20], row[20:30], strict=True) if level[1] > 0])
    asks = tuple([level for level in zip(row[30:40], row[40:50], row[50:60], strict=True) if level[1] > 0])
    return bids, asks


def _side_changes(side: int, new: np.ndarray, old: np.ndarray) -> dict[int, list[tuple[int, int, int, int, int]]]:
    """Per row of one side's ``[prices, sizes, counts]`` block, the level changes from ``old`` (rows unchanged
    are absent): in place where the prices are the same, by price where levels moved."""
    prices, sizes, counts = new[:, :LEVELS], new[:, LEVELS:2 * LEVELS], new[:, 2 * LEVELS:]
    same_prices = (prices == old[:, :LEVELS]).all(axis=1)
    differs = (new != old).any(axis=1)
    out: dict[int, list[tuple[int, int, int, int, int]]] = {}
    in_place = (sizes != old[:, LEVELS:2 * LEVELS]) | (counts != old[:, 2 * LEVELS:])
    rows, positions = np.nonzero(in_place & (differs & same_prices)[:, None])
    for row, price, size, count in zip(rows.tolist(), prices[rows, positions].tolist(),
                                       sizes[rows, positions].tolist(), counts[rows, positions].tolist(), strict=True):
        out.setdefault(row, []).append((side, price, size, UPDATE, count))
    for row in np.flatnonzero(differs & ~same_prices).tolist():
        out[row] = _changes(side, old[row].tolist(), new[row].tolist())
    return out


def _changes(side: int, old: list[int], new: list[int]) -> list[tuple[int, int, int, int, int]]:
    """``(side, price, size, action, count)`` of each level turning one side's ten levels ``old`` into ``new``
    (each ``prices + sizes + counts``, best first; size 0 is an empty level)."""
    before = {p: (s, c) for p, s, c in zip(old[:LEVELS], old[LEVELS:2 * LEVELS], old[2 * LEVELS:], strict=True) if s}
    after = {p: (s, c) for p, s, c in zip(new[:LEVELS], new[LEVELS:2 * LEVELS], new[2 * LEVELS:], strict=True) if s}
    changes = [(side, price, 0, DELETE, 0) for price in before if price not in after]
    for price, (size, count) in after.items():
        if before.get(price) != (size, count):
            changes.append((side, price, size, ADD if price not in before else UPDATE, count))
    return changes
