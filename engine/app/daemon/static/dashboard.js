// Chimera dashboard: a Bookmap-style heatmap of resting liquidity per instrument, drawn on a canvas
// from server-sent frames (/api/stream). Each frame adds one column; trades are bubbles at their
// price, detections and signals are marked. No external libraries.
"use strict";
(function () {
  const COLUMNS = 240;           // time columns kept (one per frame)
  const EVENTS = 40;             // lines kept in the event list
  const canvas = document.getElementById("heatmap");
  const ctx = canvas.getContext("2d");
  const select = document.getElementById("symbol");
  const statusEl = document.getElementById("status");
  const history = {};            // symbol -> [{bids, asks, trades, detections, signals, mid}]
  let frames = 0;
  window.chimeraFrames = 0;

  function column(inst) {
    const bid = inst.bids.length ? inst.bids[0][0] : null;
    const ask = inst.asks.length ? inst.asks[0][0] : null;
    const mid = bid !== null && ask !== null ? (bid + ask) / 2 : (bid !== null ? bid : ask);
    return { bids: inst.bids, asks: inst.asks, trades: inst.trades, detections: inst.detections,
             signals: inst.signals, mid: mid };
  }

  function addOption(symbol) {
    const option = document.createElement("option");
    option.value = option.textContent = symbol;
    select.appendChild(option);
  }

  function percentile(values, q) {
    if (!values.length) return 1;
    const sorted = values.slice().sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] || 1;
  }

  function draw() {
    const cols = history[select.value] || [];
    ctx.fillStyle = "#05070a";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const last = cols.length ? cols[cols.length - 1] : null;
    if (!last || last.mid === null) return;
    const sizes = [];
    for (const c of cols) for (const side of [c.bids, c.asks]) for (const l of side) sizes.push(l[1]);
    const cap = percentile(sizes, 0.95);
    const rows = 60;                                  // ticks shown around the latest mid
    const cellH = canvas.height / rows;
    const cellW = canvas.width / COLUMNS;
    const top = last.mid + rows / 2;
    const y = (price) => (top - price) * cellH;
    const x0 = canvas.width - cols.length * cellW;
    cols.forEach((c, i) => {
      const x = x0 + i * cellW;
      for (const [levels, hue] of [[c.bids, 200], [c.asks, 20]]) {
        for (const [price, size] of levels) {
          const v = Math.min(1, size / cap);
          ctx.fillStyle = `hsl(${hue}, 90%, ${8 + 60 * v}%)`;
          ctx.fillRect(x, y(price + 0.5), Math.ceil(cellW), Math.ceil(cellH));
        }
      }
      for (const [, price, size, aggressor] of c.trades) {
        ctx.beginPath();
        ctx.arc(x + cellW / 2, y(price), Math.min(12, 1.5 + Math.sqrt(size) / 2), 0, 2 * Math.PI);
        ctx.fillStyle = aggressor > 0 ? "rgba(63,185,80,0.75)" : aggressor < 0 ? "rgba(248,81,73,0.75)" : "#aaa";
        ctx.fill();
      }
      for (const [, , , lo, hi] of c.detections) {
        ctx.fillStyle = "#e3b341";
        ctx.fillRect(x, y((lo + hi) / 2) - 4, 8, 8);
      }
      for (const [, , side, price] of c.signals) {
        ctx.fillStyle = side > 0 ? "#56d364" : "#ff7b72";
        ctx.font = "14px sans-serif";
        ctx.fillText(side > 0 ? "▲" : "▼", x - 4, y(price) + 5);
      }
    });
  }

  function list(frame, inst) {
    const events = document.getElementById("events");
    for (const [ts, detector, side] of inst.detections) {
      const li = document.createElement("li");
      li.textContent = `${detector} ${side > 0 ? "bid" : side < 0 ? "ask" : ""} @ ${new Date(ts / 1e6).toISOString().slice(11, 19)}`;
      events.prepend(li);
    }
    for (const [, strategy, side, , decision] of inst.signals) {
      const li = document.createElement("li");
      li.textContent = `signal ${strategy} ${side > 0 ? "buy" : "sell"} (${decision})`;
      events.prepend(li);
    }
    while (events.children.length > EVENTS) events.removeChild(events.lastChild);
  }

  function positions(frame) {
    const body = document.querySelector("#positions tbody");
    body.textContent = "";
    for (const [symbol, inst] of Object.entries(frame.instruments)) {
      const p = inst.position;
      if (!p) continue;
      const tr = document.createElement("tr");
      for (const v of [symbol, p.qty, p.realized.toFixed(2), p.unrealized.toFixed(2)]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    document.getElementById("equity").textContent = frame.equity === null ? "no fills yet"
      : `equity ${frame.equity.toFixed(2)} · drawdown ${(100 * frame.drawdown).toFixed(2)} %`;
    const kill = document.getElementById("kill");
    kill.textContent = frame.kill_switch ? "KILL SWITCH ENGAGED" : "";
    kill.className = frame.kill_switch ? "on" : "";
  }

  function onFrame(frame) {
    for (const [symbol, inst] of Object.entries(frame.instruments)) {
      if (!history[symbol]) { history[symbol] = []; addOption(symbol); }
      const cols = history[symbol];
      cols.push(column(inst));
      if (cols.length > COLUMNS) cols.shift();
      if (symbol === select.value) list(frame, inst);
    }
    positions(frame);
    frames += 1;
    window.chimeraFrames = frames;
    statusEl.textContent = `live · ${frames} frames`;
    draw();
  }

  const source = new EventSource("/api/stream");
  source.onmessage = (event) => onFrame(JSON.parse(event.data));
  source.onerror = () => { statusEl.textContent = "reconnecting…"; };
  select.onchange = draw;
})();
