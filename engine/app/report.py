"""Human-readable rendering of run summaries (rich tables) and the ``--json`` last line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def console(file: TextIO | None = None) -> Console:
    return Console(file=file or sys.stdout, highlight=False, soft_wrap=True)


def summary_tables(summary: dict) -> list[Table]:
    per = Table(title=f"Run {escape(summary['run_id'])} ({summary['status']}: {escape(summary['stop_reason'])})")
    for column in ("symbol", "events", "trades", "book samples", "feature samples", "signals", "fills"):
        per.add_column(column, justify="right" if column != "symbol" else "left")
    for symbol, row in summary.get("per_instrument", {}).items():
        per.add_row(escape(symbol), *(f"{row[k]:,}" for k in ("events", "trades", "book_samples", "feature_samples",
                                                       "signals", "fills")))
    totals = Table(title="Totals")
    totals.add_column("figure")
    totals.add_column("value", justify="right")
    for label, value in (
        ("events", f"{summary['events']:,}"),
        ("event time (s)", f"{summary['event_time_seconds']:,.1f}"),
        ("wall time (s)", f"{summary['wall_seconds']:,.2f}"),
        ("events/s", f"{summary['events_per_s']:,.0f}"),
        ("signals", f"{summary['signals']:,}"),
        ("orders accepted / rejected", f"{summary['orders_accepted']:,} / {summary['orders_rejected']:,}"),
        ("orders refused by the guards", f"{summary.get('orders_refused', 0):,}"),
        ("fills", f"{summary['fills']:,}"),
        ("truth labels", f"{summary['truth_labels']:,}"),
        ("models", escape(_models_text(summary.get("models")))),
        ("confidence", escape(summary.get("confidence", ""))),
        ("DB rows", f"{sum(summary['db_rows'].values()):,} in {summary['db_batches']:,} batches"),
        ("database", escape(summary["db"])),
    ):
        totals.add_row(label, value)
    tables = [per, totals, *_performance_tables(summary.get("analytics")), _stage_table(summary["stages"])]
    if summary.get("strategies"):
        tables.insert(2, strategy_table(summary["strategies"]))
    feed = summary.get("feed", {})
    if feed.get("malformed_lines"):
        totals.add_row("[yellow]malformed input lines skipped", f"{feed['malformed_lines']:,}")
    if feed.get("truncated_tail"):
        totals.add_row("[yellow]warning", "input ended in a truncated compressed tail; replayed up to it")
    integrity = summary["errors"]["integrity"]
    if integrity:
        problems = Table(title="Integrity counters (non-zero)")
        problems.add_column("symbol")
        problems.add_column("counter")
        problems.add_column("value", justify="right")
        for symbol, counters in integrity.items():
            for name, value in counters.items():
                problems.add_row(escape(symbol), escape(name), f"{value:,}")
        tables.append(problems)
    return tables


def _models_text(models: list[dict] | None) -> str:
    """``regime regime-2026... (live)``, one per model that ran, or ``none``."""
    if not models:
        return "none"
    return ", ".join(f"{m['kind']} {m['version']} ({m['mode']})" for m in models)


def strategy_table(strategies: dict) -> Table:
    """Per strategy: signals (long / short), accepted by risk, mean confidence and how it was obtained."""
    table = Table(title="Signals per strategy")
    for column in ("strategy", "signals", "long / short", "accepted", "mean confidence", "confidence"):
        table.add_column(column, justify="left" if column in ("strategy", "confidence") else "right")
    for name, row in strategies.items():
        mean = "" if row["mean_confidence"] is None else f"{row['mean_confidence']:.3f}"
        mode = "S_raw·C (no classifier yet)" if row["confidence_mode"] == "fallback_sraw_c" else row["confidence_mode"]
        table.add_row(escape(name), f"{row['signals']:,}", f"{row['long']:,} / {row['short']:,}",
                      f"{row['accepted']:,}", mean, escape(mode))
    return table


def _figure(value, fmt: str = ",.2f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value == float("inf"):
        return "inf"
    return format(value, fmt)


def _performance_tables(analytics: dict | None) -> list[Table]:
    """Portfolio performance, transaction costs, and the round trips per strategy, regime and instrument."""
    if not analytics:
        return []
    p, t, c = analytics["portfolio"], analytics["trades"], analytics["tca"]
    perf = Table(title="Performance (equity marked to mid, fees included)")
    perf.add_column("figure")
    perf.add_column("value", justify="right")
    for label, value in (
        ("equity start / end", f"{_figure(p['equity_start'])} / {_figure(p['equity_end'])}"),
        ("total return", _figure(p["total_return"], ".4%")),
        ("Sharpe / Sortino (annualised)", f"{_figure(p['sharpe'])} / {_figure(p['sortino'])}"),
        ("max drawdown", f"{_figure(p['max_drawdown'], '.3%')} ({_figure(p['max_drawdown_value'])})"),
        ("round trips / PnL / fees", f"{t['trades']:,} / {_figure(t['pnl'])} / {_figure(t['fees'])}"),
        ("hit rate / profit factor", f"{_figure(t['hit_rate'], '.1%')} / {_figure(t['profit_factor'])}"),
        ("mean R / mean holding (s)", f"{_figure(t['mean_r'])} / {_figure(t['mean_holding_s'], ',.1f')}"),
        ("implementation shortfall (ticks/order, total)",
         f"{_figure(c['implementation_shortfall_ticks'])} / {_figure(c['implementation_shortfall_value'])}"),
        ("passive fill ratio / limit fill ratio",
         f"{_figure(c['passive_fill_ratio'], '.1%')} / {_figure(c['limit_fill_ratio'], '.1%')}"),
        ("adverse selection 1 s / 10 s (ticks)",
         f"{_figure(c['adverse_selection_1s_ticks'])} / {_figure(c['adverse_selection_10s_ticks'])}"),
    ):
        perf.add_row(label, value)
    tables = [perf]
    for key, title in (("per_strategy", "strategy"), ("per_regime", "regime"), ("per_instrument", "instrument")):
        groups = analytics[key]
        if not groups:
            continue
        table = Table(title=f"Round trips per {title}")
        for column in (title, "trades", "PnL", "hit rate", "profit factor", "mean R", "holding (s)"):
            table.add_column(column, justify="left" if column == title else "right")
        for name, g in groups.items():
            table.add_row(escape(name), f"{g['trades']:,}", _figure(g["pnl"]), _figure(g["hit_rate"], ".1%"),
                          _figure(g["profit_factor"]), _figure(g["mean_r"]), _figure(g["mean_holding_s"], ",.1f"))
        tables.append(table)
    return tables


def _stage_table(stages: dict) -> Table:
    """Per stage: events in and out, rows for the store, the deepest input queue, the p99 lag."""
    table = Table(title="Stages (lane stages summed over instruments)")
    for column in ("stage", "events in", "events out", "rows", "max queue", "lag p99 (ms)"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, row in stages.items():
        lag = "" if row.get("lag_ms_p99") is None else f"{row['lag_ms_p99']:,.1f}"
        table.add_row(escape(name), f"{row['in']:,}", f"{row['out']:,}", f"{row['records']:,}",
                      f"{row['queue_depth_max']:,}", lag)
    return table


def emit(summary: dict, *, as_json: bool, summary_path: str | None, quiet_tables: bool = False) -> None:
    """Print the tables (unless ``quiet_tables``), write ``--summary-json``, print the JSON last line."""
    if summary_path:
        Path(summary_path).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if not quiet_tables:
        out = console()
        for table in summary_tables(summary):
            out.print(table)
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        sys.stdout.flush()
