"""``/metrics``: the daemon's figures in the Prometheus text format (prometheus-client).

One collector per daemon on its own ``CollectorRegistry`` (no process-wide registry: two daemons can
run in one process). Values are read at scrape time from what the pipeline already counts, so nothing
is added to the per-event path. ``chimera_model_info`` names each loaded model (kind, version, live or
shadow) and ``chimera_scorer_info`` the signal scorer in use; the kill switch is the daemon's own.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector


class DaemonCollector(Collector):
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        live, controls = d.live, d.controls
        yield _counter("chimera_events", "Market events through the market stages.", live.events)
        yield _counter("chimera_runs_started", "Pipeline runs (sessions) started by this daemon.", d.sessions)
        current = GaugeMetricFamily("chimera_stage_queue_depth", "A stage's input-queue depth (items) when it "
                                    "last took an item.", labels=["instrument", "stage"])
        depth = GaugeMetricFamily("chimera_stage_queue_depth_max", "Deepest input queue seen by a stage "
                                  "(items), this session.", labels=["instrument", "stage"])
        lag = GaugeMetricFamily("chimera_stage_lag_seconds", "p99 of a stage's lag behind the feed in event "
                                "time over its latest batches.", labels=["instrument", "stage"])
        for key, stage in d.stage_stats().items():
            instrument, _, name = key.rpartition("/")
            labels = [instrument or "all", name]
            current.add_metric(labels, stage.depth)
            depth.add_metric(labels, stage.max_depth)
            if stage.lags:
                lag.add_metric(labels, float(np.percentile(stage.lags, 99)) / 1e9)
        yield current
        yield depth
        yield lag
        writer = d.writer_latency
        summary = SummaryMetricFamily("chimera_writer_batch_seconds", "Wall time of one store commit.")
        summary.add_metric([], count_value=writer.count, sum_value=writer.total)
        yield summary
        yield _counter("chimera_writer_rows", "Rows committed to SQLite.", writer.rows)
        signals = CounterMetricFamily("chimera_signals", "Signals by strategy and risk decision.",
                                      labels=["strategy", "decision"])
        for (strategy, decision), count in sorted(live.signals_by_strategy.items()):
            signals.add_metric([strategy, decision], count)
        yield signals
        fills = CounterMetricFamily("chimera_fills", "Fills by strategy.", labels=["strategy"])
        for strategy, count in sorted(live.fills_by_strategy.items()):
            fills.add_metric([strategy], count)
        yield fills
        pnl = GaugeMetricFamily("chimera_pnl", "Realized and unrealized P&L per instrument, currency units.",
                                labels=["instrument", "kind"])
        position = GaugeMetricFamily("chimera_position_lots", "Position per instrument, lots.", labels=["instrument"])
        for row in d.positions():
            pnl.add_metric([row["symbol"], "realized"], row["realized"])
            pnl.add_metric([row["symbol"], "unrealized"], row["unrealized"])
            position.add_metric([row["symbol"]], row["qty"])
        yield pnl
        yield position
        yield _gauge("chimera_drawdown_ratio", "Fraction of equity below its peak.", live.drawdown)
        yield _gauge("chimera_kill_switch_engaged", "1 while the kill switch rejects every signal.",
                     float(controls.engaged is not None))
        models = GaugeMetricFamily("chimera_model_info", "Models loaded from the registry (1 per model).",
                                   labels=["kind", "version", "mode"])
        for model in d.models.describe():
            models.add_metric([model["kind"], model["version"], model["mode"]], 1.0)
        yield models
        scorer = GaugeMetricFamily("chimera_scorer_info", "The signal scorer in use (1 per scorer).",
                                   labels=["scorer"])
        scorer.add_metric([d.scorer_name()], 1.0)
        yield scorer
        yield _gauge("chimera_stream_clients", "Dashboard clients connected.", live.stream_clients)
        yield _counter("chimera_stream_frames", "Dashboard frames sent (a slow client is sent fewer).",
                       live.stream_frames)
        if live.latencies:
            yield _gauge("chimera_tick_to_signal_seconds_p99", "p99 wall time from the market stage taking a "
                         "batch to a signal from it.", float(np.percentile(live.latencies, 99)))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def registry_for(daemon) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(daemon))
    return registry
