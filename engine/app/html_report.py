"""``chimera report``: one self-contained HTML file about one run (plotly with its JavaScript inlined,
rendered with jinja2; no CDN, so it opens offline).

Sections: the run's figures (analytics of engine/analytics.py), equity and drawdown, tables per
strategy, regime and instrument, the transaction costs, and the Bookmap-style heatmap of one
instrument (engine/app/heatmap.py) with trades as bubbles and the detections, signals and fills
marked. Plot divs carry fixed ids (``equity-plot``, ``heatmap-plot``) so a browser test can find them.
"""

from __future__ import annotations

import html
import sqlite3
from decimal import Decimal

import jinja2
import numpy as np

from engine.analytics import PORTFOLIO, run_analytics
from engine.app.heatmap import Heatmap, instruments_of, load_heatmap
from engine.store import fetch_dicts, get_run

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Chimera run {{ run_id }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
.plot { width: 100%; }
</style>
<script type="text/javascript">{{ plotly_js }}</script>
</head><body>
<h1>Chimera run {{ run_id }}</h1>
<p>{{ command }} &middot; status {{ status }} &middot; {{ instruments }} &middot; database {{ db }}</p>
<h2>Figures</h2>
{{ figures }}
<h2>Equity and drawdown</h2>
<div id="equity-plot" class="plot" style="height:520px"></div>
<h2>Round trips</h2>
{% for title, table in groups %}<h3>per {{ title }}</h3>{{ table }}{% endfor %}
<h2>Transaction costs</h2>
{{ tca }}
<h2>Heatmap: {{ symbol }}</h2>
<p>Resting liquidity from the stored book samples (intensity clipped at the 99th percentile), trades as bubbles
at each column's VWAP (area by volume; green buyer-initiated, red seller-initiated), detections (diamonds),
signals (stars) and our fills (triangles).</p>
<div id="heatmap-plot" class="plot" style="height:760px"></div>
<script type="text/javascript">
var equity = {{ equity_json }};
Plotly.newPlot("equity-plot", equity.data, equity.layout, {responsive: true});
var heat = {{ heat_json }};
Plotly.newPlot("heatmap-plot", heat.data, heat.layout, {responsive: true});
</script>
</body></html>
"""


def build_report(conn: sqlite3.Connection, db: str, run_id: str, symbol: str | None, t_from: int | None,
                 t_to: int | None) -> str:
    """The report's HTML text."""
    from plotly.offline import get_plotlyjs

    run = get_run(conn, run_id)
    instruments = instruments_of(conn, run_id)
    heat = load_heatmap(conn, run_id, symbol, t_from, t_to)
    symbols = {r["instrument_id"]: s for s, r in instruments.items()}
    tick_values = {r["instrument_id"]: float(Decimal(r["tick_size"]) * Decimal(r["multiplier"]))
                   for r in instruments.values()}
    equity_rows = fetch_dicts(conn, "equity", run_id)
    trips = fetch_dicts(conn, "round_trips", run_id)
    equity0 = _equity0(equity_rows)
    analytics = run_analytics(equity_rows, trips, fetch_dicts(conn, "orders", run_id),
                              fetch_dicts(conn, "fills", run_id), equity0, symbols, tick_values)
    groups = [(name, _table(analytics[f"per_{name}"])) for name in ("strategy", "regime", "instrument")]
    env = jinja2.Environment(autoescape=False)  # every value below is escaped where it is built
    return env.from_string(TEMPLATE).render(
        run_id=html.escape(run_id), command=html.escape(run.command if run else ""),
        status=html.escape(run.status if run else ""), instruments=html.escape(", ".join(sorted(instruments))),
        db=html.escape(db), plotly_js=get_plotlyjs(), figures=_table({"portfolio": analytics["portfolio"],
                                                                       "all trades": analytics["trades"]}),
        groups=groups, tca=_table({"orders and fills": analytics["tca"]}), symbol=html.escape(heat.symbol),
        equity_json=_equity_figure(equity_rows, equity0).to_json(), heat_json=heatmap_figure(heat).to_json(),
    )


def _equity0(rows: list[dict]) -> float:
    """Starting equity: the first portfolio row's equity minus its cash and marked positions."""
    for r in rows:
        if r["instrument_id"] == PORTFOLIO:
            return r["equity"] - r["cash"] - (r["marked_value"] or 0.0)
    return 0.0


def _table(groups: dict[str, dict]) -> str:
    """An HTML table: one row per group, one column per figure."""
    if not groups:
        return "<p>none</p>"
    columns = list(next(iter(groups.values())))
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in ["", *columns])
    body = "".join(
        "<tr><td>" + html.escape(str(name)) + "</td>" + "".join(f"<td>{_cell(g.get(c))}</td>" for c in columns)
        + "</tr>" for name, g in groups.items())
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if value == float("inf") else f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.2f}"
    return html.escape(f"{value:,}" if isinstance(value, int) else str(value))


def _equity_figure(rows: list[dict], equity0: float):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    points = sorted((r["ts"], r["equity"]) for r in rows if r["instrument_id"] == PORTFOLIO)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    if points:
        t0 = points[0][0]
        t = [(p[0] - t0) / 1e9 for p in points]
        equity = np.array([p[1] for p in points])
        high = np.maximum.accumulate(np.concatenate(([equity0], equity)))[1:]
        fig.add_trace(go.Scatter(x=t, y=equity, name="equity", line={"color": "#1565c0"}), row=1, col=1)
        fig.add_trace(go.Scatter(x=t, y=-(high - equity) / high * 100, name="drawdown %", fill="tozeroy",
                                 line={"color": "#c62828"}), row=2, col=1)
    fig.update_layout(margin={"l": 60, "r": 20, "t": 30, "b": 40}, template="plotly_white")
    fig.update_xaxes(title_text="seconds from the first equity row", row=2, col=1)
    return fig


def heatmap_figure(heat: Heatmap):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Heatmap(x=heat.times, y=heat.prices, z=heat.intensity, colorscale="Inferno",
                             colorbar={"title": "resting size"}, name="liquidity", hoverongaps=False))
    fig.add_trace(go.Scatter(x=heat.times, y=heat.best_bid, name="best bid", line={"color": "#4fc3f7", "width": 1}))
    fig.add_trace(go.Scatter(x=heat.times, y=heat.best_ask, name="best ask", line={"color": "#ff8a65", "width": 1}))
    tr = heat.trades
    if len(tr.get("t", ())):
        fig.add_trace(go.Scatter(
            x=tr["t"], y=tr["price"], mode="markers", name="trades",
            marker={"size": 4 + 26 * np.sqrt(tr["volume"] / tr["volume"].max()), "opacity": 0.6,
                    "color": np.where(tr["side"] > 0, "#00e676", np.where(tr["side"] < 0, "#ff1744", "#bdbdbd")),
                    "line": {"color": "white", "width": 0.5}},
            text=[f"volume {v:,.0f}" for v in tr["volume"]]))
    if heat.detections:
        fig.add_trace(go.Scatter(x=[d["t"] for d in heat.detections], y=[d["price"] for d in heat.detections],
                                 mode="markers", name="detections", text=[d["kind"] for d in heat.detections],
                                 marker={"symbol": "diamond-open", "size": 9, "color": "#ffee58"}))
    if heat.signals:
        fig.add_trace(go.Scatter(x=[s["t"] for s in heat.signals], y=[s["price"] for s in heat.signals],
                                 mode="markers", name="signals",
                                 text=[f"{s['strategy']} {s['decision']}" for s in heat.signals],
                                 marker={"symbol": "star", "size": 13, "color": "#e040fb"}))
    for side, symbol, colour in ((1, "triangle-up", "#00b0ff"), (-1, "triangle-down", "#ff9100")):
        fl = [f for f in heat.fills if f["side"] == side]
        if fl:
            fig.add_trace(go.Scatter(x=[f["t"] for f in fl], y=[f["price"] for f in fl], mode="markers",
                                     name="buy fills" if side > 0 else "sell fills",
                                     text=[f"{f['size']} lots {f['liquidity']}" for f in fl],
                                     marker={"symbol": symbol, "size": 12, "color": colour,
                                             "line": {"color": "white", "width": 1}}))
    step = heat.prices[1] - heat.prices[0] if len(heat.prices) > 1 else heat.tick_size
    fig.update_layout(template="plotly_dark", margin={"l": 60, "r": 20, "t": 30, "b": 40},
                      xaxis_title="seconds from the window start", yaxis_title=f"{heat.symbol} price",
                      yaxis_range=[float(heat.prices[0] - step), float(heat.prices[-1] + step)],
                      legend={"orientation": "h"})
    return fig
