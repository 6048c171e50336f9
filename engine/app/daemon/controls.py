"""The daemon's controls over a running pipeline: strategy pauses, the kill switch, risk limits, flatten,
and the state they make up (checkpointed in SQLite, restored by the next session or a restarted daemon).

Pauses and the kill switch are risk checks placed first in the risk stage's list (``RiskManager.checks``):
a paused strategy's signals, or every signal while the kill switch is engaged, are rejected with that
reason in the ``signals`` table, never silently dropped. A risk-limit change is validated as a whole
``[risk]`` section (``RiskConfig``, the ranges of config.toml) before any check is changed. Flatten
sends market orders through the execution stage's core at once, against the current book (positions
change immediately); their ``orders``/``fills``/``equity`` rows reach the store with that stage's next
batch, or at the end of the session.
"""

from __future__ import annotations

import msgspec

from engine.config import Config
from engine.config.tree import RiskConfig
from engine.errors import ConfigError
from engine.events import OrderRequest, OrderType
from engine.risk import MaxOrderSize, OrderIntent, OrderRate, PositionLimit, RiskState
from ml.scoring import ScoredSignal

RISK_LIMITS = ("max_position", "max_order_size", "order_size", "max_orders_per_second")


class KillSwitch:
    """Rejects every signal while engaged (engaged by the control API; reset by it)."""

    def __init__(self) -> None:
        self.engaged = False
        self.reason = ""

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        return f"kill switch engaged: {self.reason}" if self.engaged else None


class StrategyPauses:
    """Rejects the signals of paused strategies."""

    def __init__(self) -> None:
        self.paused: set[str] = set()

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        return "strategy paused" if scored.signal.strategy in self.paused else None


class Controls:
    """Operator state that outlives one pipeline run: applied to each new run's cores by ``attach``."""

    def __init__(self, config: Config) -> None:
        self.kill_switch = KillSwitch()
        self.pauses = StrategyPauses()
        self.risk = config.risk
        self.positions: dict[str, dict[str, float]] = {}  # symbol -> Position fields, restored into a run
        self.risk_manager = None
        self.execution = None
        self.symbols: dict[int, str] = {}
        self.books: dict[int, object] = {}
        self.strategies: set[str] = set()

    # --- attaching to a run ---------------------------------------------------------------------------
    def attach(self, pipeline) -> None:
        """Install the checks into ``pipeline``'s risk stage, restore positions, apply the limits."""
        stages = dict(pipeline.portfolio)
        self.risk_manager, self.execution = stages["risk"], stages["execution"]
        self.risk_manager.checks[:0] = [self.kill_switch, self.pauses]
        self.symbols = {d.instrument_id: d.symbol for d in pipeline.instruments}
        self.books = {lane.instrument.instrument_id: dict(lane.stages)["market"].book for lane in pipeline.lanes}
        self.strategies = {s.name for lane in pipeline.lanes for s in dict(lane.stages)["signals"].strategies}
        self._apply_limits()
        positions = self.execution.portfolio.positions
        for iid, symbol in self.symbols.items():
            saved = self.positions.get(symbol)
            if saved:
                pos = positions[iid]
                pos.qty, pos.cash = int(saved["qty"]), float(saved["cash"])
                pos.realized, pos.avg_price = float(saved["realized"]), float(saved["avg_price"])
                self.risk_manager.state.position[iid] = pos.qty

    def detach(self) -> None:
        """Keep the run's final positions for the next session."""
        self.positions = self.position_state()
        self.risk_manager = self.execution = None

    # --- the operations -----------------------------------------------------------------------------
    def pause(self, strategy: str, paused: bool) -> None:
        if strategy not in self.strategies:
            raise KeyError(strategy)
        (self.pauses.paused.add if paused else self.pauses.paused.discard)(strategy)

    def engage(self, reason: str) -> None:
        self.kill_switch.engaged, self.kill_switch.reason = True, reason

    def reset_kill_switch(self) -> None:
        self.kill_switch.engaged, self.kill_switch.reason = False, ""

    def set_risk_limits(self, changes: dict) -> RiskConfig:
        """Validate ``changes`` over the current ``[risk]`` section, then apply it.

        Raises:
            ConfigError: an unknown key, a value outside its range, or limits that contradict each other.
        """
        unknown = set(changes) - set(RISK_LIMITS)
        if unknown:
            raise ConfigError(f"unknown risk limit {sorted(unknown)[0]!r}; known: {', '.join(RISK_LIMITS)}")
        merged = {**msgspec.to_builtins(self.risk), **changes}
        try:
            risk = msgspec.convert(merged, RiskConfig)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ConfigError(f"risk limits: {exc}") from None
        self.risk = risk
        self._apply_limits()
        return risk

    def _apply_limits(self) -> None:
        manager = self.risk_manager
        if manager is None:
            return
        manager.order_size = self.risk.order_size
        for check in manager.checks:
            if isinstance(check, MaxOrderSize):
                check.limit = self.risk.max_order_size
            elif isinstance(check, PositionLimit):
                check.limit = self.risk.max_position
            elif isinstance(check, OrderRate):
                check.per_second = self.risk.max_orders_per_second

    def flatten(self) -> list[dict]:
        """Close every open position with a market order against the current book; return the orders."""
        if self.execution is None:
            return []
        done = []
        for iid, pos in self.execution.portfolio.positions.items():
            if pos.qty == 0:
                continue
            book = self.books[iid]
            view = book.view()
            side = -1 if pos.qty > 0 else 1
            client_id = f"flatten-{iid}-{view.seq}"
            order = OrderRequest(instrument_id=iid, client_id=client_id, side=side, order_type=OrderType.MARKET,
                                 price=0, size=abs(pos.qty), tif="IOC", ts_local=view.ts_recv, strategy="flatten",
                                 signal_id="")
            before = pos.qty
            self.execution.apply([OrderIntent(order, view)])
            self.risk_manager.state.position[iid] = pos.qty
            done.append({"symbol": self.symbols[iid], "side": side, "size": abs(before), "position": pos.qty})
        return done

    # --- state ---------------------------------------------------------------------------------------
    def position_state(self) -> dict[str, dict[str, float]]:
        if self.execution is None:
            return self.positions
        out = dict(self.positions)
        for iid, pos in self.execution.portfolio.positions.items():
            out[self.symbols[iid]] = {"qty": pos.qty, "cash": pos.cash, "realized": pos.realized,
                                      "avg_price": pos.avg_price}
        return out

    def state(self) -> dict:
        """Everything a restarted daemon resumes (no open orders exist: every order is IOC today)."""
        return {
            "positions": self.position_state(),
            "kill_switch": {"engaged": self.kill_switch.engaged, "reason": self.kill_switch.reason},
            "paused": sorted(self.pauses.paused),
            "risk": msgspec.to_builtins(self.risk),
            "open_orders": [],
        }

    def restore(self, state: dict) -> None:
        """Take a checkpoint's state (before the first run attaches)."""
        self.positions = dict(state.get("positions", {}))
        switch = state.get("kill_switch", {})
        self.kill_switch.engaged = bool(switch.get("engaged", False))
        self.kill_switch.reason = str(switch.get("reason", ""))
        self.pauses.paused = set(state.get("paused", []))
        if "risk" in state:
            self.risk = msgspec.convert(state["risk"], RiskConfig)
