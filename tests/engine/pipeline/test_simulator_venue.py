"""``[execution] venue = "simulator"``: the run's orders enter the simulator's matching engine."""

from __future__ import annotations

import asyncio

import pytest

from engine import store
from engine.config import load_config
from engine.errors import ConfigError
from engine.events import Liquidity, OrderAdd, OrderExecute, Trade
from engine.pipeline import Pipeline, RunOptions, run_reference
from feeds.simulator import MarketSimulator
from feeds.simulator.client import CLIENT_OID_BASE
from strategies.queue_imbalance import QueueImbalanceProbe

SYMBOLS = ["TSLA", "AAPL"]


def busy_strategies(instrument_def):
    return [QueueImbalanceProbe(instrument_def.instrument_id, threshold=0.3, max_spread=50, cooldown_s=0.5)]


class TapedSimulator(MarketSimulator):
    """The simulator, keeping every event it releases: its own tape, as every agent saw it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tape: list = []

    def resume(self, until_ns: int) -> list:
        out = super().resume(until_ns)
        self.tape += out
        return out


def venue_config(*extra: str):
    return load_config(overrides=["execution.venue=simulator", "execution.latency_model=constant",
                                  "execution.simulator_gate_us=1000", "risk.max_position=300",
                                  "risk.max_orders_per_second=2", *extra])


def run(tmp_path, config, seconds=20.0):
    feed = TapedSimulator(SYMBOLS, config, seed=3, duration_s=seconds, gated=True,
                          gate_step_ns=int(config.execution.simulator_gate_us * 1000))
    path = tmp_path / "venue.db"
    store.connect(path).close()
    pipeline = Pipeline(feed, config, str(path), "run", RunOptions(strategies=busy_strategies))
    stats = asyncio.run(pipeline.run())
    conn = store.connect(path)
    try:
        rows = {table: store.fetch_dicts(conn, table, "run") for table in ("fills", "orders")}
    finally:
        conn.close()
    return feed, pipeline, stats, rows


def test_fills_of_a_run_are_prints_on_the_simulators_own_tape(tmp_path):
    feed, pipeline, stats, rows = run(tmp_path, venue_config())
    fills = rows["fills"]
    assert fills, "the busy probe trades within 20 s"
    broker = pipeline.portfolio[-1][1].broker
    # every order reaches the matching engine at its decision time + entry latency, except entries
    # of signals stamped at a 1 s feature sample that the lane only closes at the next market event:
    # they enter at the simulation's clock then (a step after that event at most)
    decision = int(config_of(pipeline).risk.decision_latency_us * 1000)
    entry = int(config_of(pipeline).execution.entry_latency_us * 1000)
    for kind, client_id, arrival, entered in broker.late_requests:
        assert kind == "order" and "/" not in client_id  # an entry, never an exit or a cancel
        assert (arrival - decision - entry) % 1_000_000_000 == 0
        assert entered - arrival < 100_000_000
    trades = {(ev.instrument_id, ev.ts_event, ev.price, ev.size, ev.aggressor) for ev in feed.tape
              if type(ev) is Trade}
    ours = {ev.order_id for ev in feed.tape if type(ev) is OrderAdd and ev.order_id > CLIENT_OID_BASE}
    executed = {(ev.instrument_id, ev.ts_event, ev.price, ev.size) for ev in feed.tape
                if type(ev) is OrderExecute and ev.order_id in ours}
    for f in fills:
        if f["liquidity"] == Liquidity.TAKER:  # our aggressive order printed, buyer/seller as we were
            assert (f["instrument_id"], f["ts_exchange"], f["price"], f["size"], f["side"]) in trades
        else:  # a market order of the simulation executed our resting order
            assert (f["instrument_id"], f["ts_exchange"], f["price"], f["size"]) in executed
    assert len(fills) == broker.fills
    # every order the run sent is a client order of the simulator; the others were refused before sending
    sent = {cid for d in feed.desks() for cid in d.orders}
    assert sent and sent <= {o["client_id"] for o in rows["orders"]}
    assert all(o["status"] == "rejected" for o in rows["orders"] if o["client_id"] not in sent)


def config_of(pipeline):
    return pipeline.config


def test_venue_simulator_needs_the_gated_simulator():
    config = venue_config()
    with pytest.raises(ConfigError, match="venue"):
        run_reference(MarketSimulator(SYMBOLS, config, seed=3, duration_s=2.0), config,
                      RunOptions(strategies=busy_strategies))


def test_venue_is_validated():
    with pytest.raises(ConfigError):
        load_config(overrides=["execution.venue=exchange"])
    with pytest.raises(ConfigError):
        load_config(overrides=["execution.simulator_gate_us=0"])
