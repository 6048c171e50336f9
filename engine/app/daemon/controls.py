"""The daemon's controls over a running pipeline: strategy pauses, the kill switch, risk limits, flatten,
and the state they make up (checkpointed in SQLite, restored by the next session or a restarted daemon).

Pauses and the kill switch are risk checks placed first in the risk stage's list (``RiskManager.checks``):
a paused strategy's signals, or every signal while the kill switch is engaged, are rejected with that
reason in the ``signals`` table, never silently dropped. A risk-limit change is validated as a whole
``[risk]`` section (``RiskConfig``, the ranges of config.toml) before any check is changed. Flatten and
the kill switch act through the execution stage (``ExecutionStage.flatten``/``kill``): market exits of
every open round trip, filled as the market stream goes on. A session ends flat (the execution stage
flattens at end of stream), so what a restart resumes is cash and realized P&L, not open positions.
"""

from __future__ import annotations

import msgspec

from engine.config import Config
from engine.config.strategies import StrategiesConfig
from engine.config.tree import RiskConfig
from engine.errors import ConfigError
from engine.risk import MaxOrderSize, OrderRate, PositionLimit, RiskState
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
        self.running: list = []  # the strategy objects of every lane of the attached run

    # --- attaching to a run ---------------------------------------------------------------------------
    def attach(self, pipeline) -> None:
        """Install the checks into ``pipeline``'s risk stage, restore positions, apply the limits."""
        stages = dict(pipeline.portfolio)
        self.risk_manager, self.execution = stages["risk"], stages["execution"]
        self.risk_manager.checks[:0] = [self.kill_switch, self.pauses]
        self.symbols = {d.instrument_id: d.symbol for d in pipeline.instruments}
        self.books = {lane.instrument.instrument_id: dict(lane.stages)["market"].book for lane in pipeline.lanes}
        self.running = [s for lane in pipeline.lanes for s in dict(lane.stages)["signals"].strategies]
        self.strategies = {s.name for s in self.running}
        self._apply_limits()
        positions = self.execution.portfolio.positions
        for iid, symbol in self.symbols.items():
            saved = self.positions.get(symbol)
            if saved:
                pos = positions[iid]
                pos.qty, pos.cash = int(saved["qty"]), float(saved["cash"])
                pos.realized, pos.avg_price = float(saved["realized"]), float(saved["avg_price"])
                pos.fees = float(saved.get("fees", 0.0))
                self.risk_manager.state.position[iid] = pos.qty

    def detach(self) -> None:
        """Keep the run's final positions for the next session."""
        self.positions = self.position_state()
        self.risk_manager = self.execution = None
        self.running = []

    def retune(self, config: StrategiesConfig) -> tuple[list[str], list[str]]:
        """Give the running strategies ``config``'s parameters; return the names retuned and the names kept
        as they were (a user strategy without a ``retune(config)`` method takes new parameters at the next
        session)."""
        retuned, kept = set(), set()
        for strategy in self.running:
            retune = getattr(strategy, "retune", None)
            if retune is None:
                kept.add(strategy.name)
            else:
                retune(config)
                retuned.add(strategy.name)
        return sorted(retuned), sorted(kept)

    def strategy_params(self) -> dict[str, dict]:
        """The parameters each running built-in strategy uses now (one instrument's: every lane has the same)."""
        params: dict[str, dict] = {}
        for strategy in self.running:
            p = getattr(strategy, "p", None)
            if p is not None and strategy.name not in params:
                params[strategy.name] = msgspec.to_builtins(p)
        return params

    # --- the operations -----------------------------------------------------------------------------
    def pause(self, strategy: str, paused: bool) -> None:
        if strategy not in self.strategies:
            raise KeyError(strategy)
        (self.pauses.paused.add if paused else self.pauses.paused.discard)(strategy)

    def engage(self, reason: str) -> None:
        """Reject every new signal at the risk stage, latch the execution stage's kill switch (it cancels
        working entries and flattens)."""
        self.kill_switch.engaged, self.kill_switch.reason = True, reason
        if self.execution is not None:
            self.execution.kill(f"operator: {reason}")

    def reset_kill_switch(self) -> None:
        """Unlatch both: the operator's and the execution stage's (drawdown, daily loss, losing streak)."""
        self.kill_switch.engaged, self.kill_switch.reason = False, ""
        if self.execution is not None:
            self.execution.guard.reset()

    @property
    def engaged(self) -> str | None:
        """Why new orders are blocked (the operator's switch or the execution stage's latch), or None."""
        if self.kill_switch.engaged:
            return self.kill_switch.reason or "operator"
        return self.execution.guard.killed if self.execution is not None else None

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
        """Exit every open position at market through the execution stage (filled as the market goes on);
        return the positions it is closing."""
        if self.execution is None:
            return []
        closing = [{"symbol": self.symbols[iid], "position": pos.qty}
                   for iid, pos in self.execution.portfolio.positions.items() if pos.qty]
        self.execution.flatten("operator")
        return closing

    # --- state ---------------------------------------------------------------------------------------
    def position_state(self) -> dict[str, dict[str, float]]:
        if self.execution is None:
            return self.positions
        out = dict(self.positions)
        for iid, pos in self.execution.portfolio.positions.items():
            out[self.symbols[iid]] = {"qty": pos.qty, "cash": pos.cash, "realized": pos.realized,
                                      "avg_price": pos.avg_price, "fees": pos.fees}
        return out

    def state(self) -> dict:
        """Everything a restarted daemon resumes (no open orders exist: every order is IOC today)."""
        return {
            "positions": self.position_state(),
            "kill_switch": {"engaged": self.kill_switch.engaged, "reason": self.kill_switch.reason},
            "latched": self.engaged,
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
