"""The ``Broker`` protocol: what the execution stage needs from whatever executes its orders.

``SimulatedExchange`` (engine/execution/simulated.py) implements it for backtests, replay and the
simulator; a live broker adapter would implement the same four calls, fed with the same market
events (it may ignore them) and answering with the same ``Ack``/``Reject``/``Fill``/``CancelAck``
values, stamped with exchange and local times.
"""

from __future__ import annotations

from typing import Protocol

from engine.events import Ack, CancelAck, Fill, OrderRequest, Reject

Response = Ack | Reject | Fill | CancelAck


class Broker(Protocol):
    def submit(self, order: OrderRequest) -> None:
        """Send an order decided at ``order.ts_local``; its answers come back from ``on_market``/``advance``."""
        ...

    def cancel(self, instrument_id: int, client_id: str, ts_local: int) -> None:
        """Ask to cancel a working order (it may fill before the request arrives)."""
        ...

    def on_market(self, ev) -> list[Response]:
        """One market event, in feed order; returns the responses it caused."""
        ...

    def advance(self, ts: int) -> list[Response]:
        """Time passes without market events (end of data); returns the responses due by ``ts``."""
        ...

    def quote(self, instrument_id: int) -> tuple[int | None, int | None]:
        """Best bid and ask of the market as the broker last saw it (ticks; None for an empty side)."""
        ...

    def working(self, client_id: str) -> bool:
        """The order is still pending or resting."""
        ...
