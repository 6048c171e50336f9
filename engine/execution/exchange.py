"""The Exchange protocol and the execution stage core.

``BookWalkExchange`` is the conservative default of this stage until the execution simulator
(queue position, latency models, fees per venue) replaces it. Its assumptions, all of them:
- market and IOC orders walk the visible book of the view the order was decided on, level by
  level up to the limit price (IOC) or the whole visible side (market); one fill per level;
- the book does not move between decision and arrival (the order reaches the exchange
  ``entry_latency_ns`` later and is answered ``response_latency_ns`` after that);
- hidden liquidity is never assumed; unfilled remainder is cancelled (IOC semantics);
- resting limit and stop orders are rejected ("resting orders need the queue model"), never assumed
  filled (a stop is never triggered here);
- taker fees per lot from config; no rebates (no passive fills).
"""

from __future__ import annotations

from typing import Protocol

from engine.book import BookView
from engine.events import BUY, Ack, Fill, Liquidity, OrderRequest, OrderType, Reject
from engine.portfolio import Portfolio
from engine.records import RecordBuffer
from engine.risk import OrderIntent


class Exchange(Protocol):
    def submit(self, order: OrderRequest, view: BookView | None) -> list[Ack | Reject | Fill]:
        """Send one order; return its acknowledgement, fills or rejection."""
        ...


class BookWalkExchange:
    def __init__(
        self, taker_fee_per_lot: float, entry_latency_ns: int = 1_000_000, response_latency_ns: int = 1_000_000
    ) -> None:
        self.taker_fee_per_lot = taker_fee_per_lot
        self.entry_latency_ns = entry_latency_ns
        self.response_latency_ns = response_latency_ns

    def submit(self, order: OrderRequest, view: BookView | None) -> list[Ack | Reject | Fill]:
        t_exch = order.ts_local + self.entry_latency_ns
        t_back = t_exch + self.response_latency_ns
        iid, cid = order.instrument_id, order.client_id
        if order.order_type in (OrderType.LIMIT, OrderType.STOP):
            return [Reject(iid, cid, "resting orders need the queue model", t_exch, t_back)]
        if view is None:
            return [Reject(iid, cid, "no book", t_exch, t_back)]
        prices, sizes = (view.ask_px, view.ask_sz) if order.side == BUY else (view.bid_px, view.bid_sz)
        out: list[Ack | Reject | Fill] = [Ack(iid, cid, t_exch, t_back)]
        remaining = order.size
        for price, size in zip(prices, sizes, strict=True):
            if remaining <= 0:
                break
            if order.order_type == OrderType.IOC and (price - order.price) * order.side > 0:
                break
            take = min(remaining, size)
            fee = take * self.taker_fee_per_lot
            out.append(Fill(iid, cid, order.side, price, take, Liquidity.TAKER, fee, t_exch, t_back))
            remaining -= take
        if remaining == order.size:
            return [Reject(iid, cid, "no visible liquidity within the limit", t_exch, t_back)]
        return out


class ExecutionStage(RecordBuffer):
    """Stage core: order intents (canonical order) -> exchange responses; records orders, fills, equity."""

    def __init__(self, exchange: Exchange, portfolio: Portfolio, equity0: float) -> None:
        super().__init__()
        self.exchange = exchange
        self.portfolio = portfolio
        self.equity0 = equity0
        self.fills = 0

    def apply(self, batch: list[OrderIntent]) -> list:
        out = []
        for intent in batch:
            order = intent.order
            responses = self.exchange.submit(order, intent.view)
            status, reason, fill_no = "acked", None, 0
            for response in responses:
                if type(response) is Fill:
                    fill_no += 1
                    self._on_fill(response, fill_no, intent.view)
                elif type(response) is Reject:
                    status, reason = "rejected", response.reason
            if fill_no:
                filled = sum(r.size for r in responses if type(r) is Fill)
                status = "filled" if filled == order.size else "partially_filled"
            self.records.append(("orders", (
                order.client_id, order.signal_id, order.instrument_id, order.ts_local, order.side,
                order.order_type, order.price, order.size, order.tif, order.strategy, status, reason,
            )))
            out.extend(responses)
        return out

    def _on_fill(self, fill: Fill, fill_no: int, view: BookView | None) -> None:
        self.fills += 1
        pos = self.portfolio.on_fill(fill)
        self.records.append(("fills", (
            fill.client_id, fill_no, fill.instrument_id, fill.ts_exchange, fill.ts_local, fill.side,
            fill.price, fill.size, fill.liquidity, fill.fee,
        )))
        mark = (view.bid_px[0] + view.ask_px[0]) / 2 if view and view.bid_px and view.ask_px else fill.price
        unrealized = self.portfolio.unrealized(fill.instrument_id, mark)
        cash = sum(p.cash for p in self.portfolio.positions.values())
        value = sum(
            p.qty * (mark if iid == fill.instrument_id else p.avg_price) * self.portfolio.tick_value[iid]
            for iid, p in self.portfolio.positions.items()
        )
        self.records.append(("equity", (
            fill.instrument_id, fill.ts_local, pos.qty, cash, pos.realized, unrealized,
            self.equity0 + cash + value,
        )))

    def flush(self) -> list:
        return []
