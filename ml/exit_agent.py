"""The Q-learning exit agent (SPEC section 7): a pure synchronous core over stored entry paths.

Paths. For every entry of a run, ``PathRecorder`` (the execution stage's read-only observer) stores,
from the fill up to the strategy's time stop, one step per TF1 (1 s) close of the instrument: the
time since the fill, best bid and ask, the 1 s volatility σ1 of the mid (ticks, last 60 TF1 closes),
the protective swing (lowest mid of the last 10 closes for a long, highest for a short), and the
order-flow term ``ε·ofi_z(10 s)``. The path continues after the run's own exit, so every exit policy
can be replayed on the very same path (the off-policy replay of SPEC 7: our exits are small against
the book). The entry's side, average price, lots, initial stop, target, regime at entry and the
taker fee of an exit are kept with it.

Deviations from SPEC 7, by necessity of what the execution stage sees (it has the top of book, not
the feature stage's flow):
- ``ofi_z(10 s)`` is the 10 s change of the mid divided by the standard deviation of 10 s changes
  over the last 30 min of TF1 closes (a price-flow proxy of order-flow imbalance);
- the regime group is the regime at entry, relative to the side: with-trend (TREND_UP for a long,
  TREND_DOWN for a short), range (RANGE_*, unknown), against (SHOCK, BREAKOUT, trend against);
- decision times are the TF1 closes only (an own fill of an exit ends the step it was sent in);
- the TRAIL swing is the extreme mid of the last 10 TF1 closes; the stop check is at TF1 closes,
  and an exit fills at the bid (long) or the ask (short) of that close plus the taker fee: the
  spread cost and the fee of every exit are in the reward.

State (1,512 = 7·4·3·3·2·3): unrealised PnL in R of the mid, time in trade over the time stop,
``ε·ofi_z``, regime group, remaining size, give-back from the maximum favourable excursion (in R,
of the mid). Actions: HOLD, EXIT_HALF (only when full and more than one lot), EXIT_ALL,
STOP_TO_BREAKEVEN (entry ± ``cost_ticks``; only when it tightens the stop and stays on the safe side
of the exit price), TRAIL (stop to the tighter of ``mid ∓ σ1`` and the swing; only when it tightens
and stays on the safe side). The agent keeps the strategy's initial stop as its protective stop
(moved only by its own actions) and has no fixed target; the time stop forces the exit.

Reward per step ``r_t = ΔEquity_t / (R·tick_value·size0)``; equity is realised plus marked to the
mid after fees; the first decision's equity (entry fee, entry price against the mid) is the same for
every policy and starts the episode, so the sum of the rewards plus it is the trade's net R.

Training: epochs of off-policy replay over every stored path with ε-greedy actions (ε from 1.0 to
``epsilon_min`` exponentially over ``epsilon_epochs``), ``Q ← Q + α_n (r + γ max_a' Q(s',a') − Q)``,
``α_n = 1/(1+n(s,a))^0.6``, Q = 0 initially, γ = 0.995; stop when, after ``min_epochs``, the greedy
policy changes on fewer than 0.5 % of the visited states between epochs (``max_epochs`` caps it).
The rule applies from ``min_epochs`` on (by default the epoch ε reaches its floor): while ε is high
the greedy policy of a few visited states can stand still by chance.

The σ trailing-stop policy trails the mid at ``trail_sigmas`` σ of the 1-min mid change (σ1·√60),
from the initial stop, only tightening: a trail at a few σ1 sits inside one second's noise of R.

Evaluation: the four policies (fixed bracket, time stop only, σ trailing stop, the agent) on the same
held-out paths; per-trade net R; paired bootstrap (10,000 draws, seeded) and Wilcoxon signed-rank on
the agent's per-trade R minus the bracket's. Accept the agent only if the mean improves with both
p-values < 0.05 and the drawdown in R is not worse; otherwise the fixed bracket ships.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

NS = 1_000_000_000
TF1_NS = NS

HOLD, EXIT_HALF, EXIT_ALL, STOP_TO_BREAKEVEN, TRAIL = range(5)
ACTIONS = ("HOLD", "EXIT_HALF", "EXIT_ALL", "STOP_TO_BREAKEVEN", "TRAIL")
N_ACTIONS = 5

PNL_EDGES = (-0.75, -0.25, 0.25, 0.75, 1.5, 2.5)  # right-closed bins: (-inf, -0.75], ..., (2.5, inf)
TIME_EDGES = (0.1, 0.3, 0.6)  # left-closed bins: [0, .1), [.1, .3), [.3, .6), [.6, 1]
GIVEBACK_EDGES = (0.25, 0.60)  # < 25 %, 25-60 %, > 60 %
DIMS = (7, 4, 3, 3, 2, 3)
N_STATES = math.prod(DIMS)  # 1,512

WITH_TREND, RANGE, AGAINST = 0, 1, 2
FULL, HALF = 0, 1

GAMMA = 0.995
ALPHA_POWER = 0.6
CONVERGED_SHARE = 0.005
POLICIES = ("fixed_bracket", "time_stop", "trailing_stop", "q_agent")


# ---- state ------------------------------------------------------------------------------------------
def pnl_bin(r: float) -> int:
    """Unrealised PnL in R: bins (-inf,-0.75], (-0.75,-0.25], (-0.25,0.25], (0.25,0.75], (0.75,1.5],
    (1.5,2.5], (2.5,inf)."""
    return int(np.searchsorted(PNL_EDGES, r, side="left"))


def time_bin(fraction: float) -> int:
    """Time in trade over the time stop: [0,.1), [.1,.3), [.3,.6), [.6,1] (clipped to [0, 1])."""
    return int(np.searchsorted(TIME_EDGES, min(max(fraction, 0.0), 1.0), side="right"))


def ofi_bin(signed_z: float) -> int:
    """``ε·ofi_z``: < -1, [-1, 1], > 1."""
    return 0 if signed_z < -1.0 else (2 if signed_z > 1.0 else 1)


def giveback_bin(mfe_r: float, pnl_r: float) -> int:
    """Share of the maximum favourable excursion given back: < 25 %, 25-60 %, > 60 % (0 with no MFE)."""
    if mfe_r <= 0:
        return 0
    share = (mfe_r - pnl_r) / mfe_r
    return 0 if share < GIVEBACK_EDGES[0] else (1 if share <= GIVEBACK_EDGES[1] else 2)


def regime_group(regime: str, side: int) -> int:
    """With-trend, range, or shock/breakout/trend-against, of the regime at entry for ``side``."""
    name = (regime or "").upper()
    if name in ("TREND_UP", "TREND_DOWN"):
        return WITH_TREND if (name == "TREND_UP") == (side > 0) else AGAINST
    if name in ("SHOCK", "BREAKOUT"):
        return AGAINST
    return RANGE


def state_index(p: int, t: int, o: int, g: int, s: int, b: int) -> int:
    """Row of the Q-table of the state bins (PnL, time, flow, regime group, size, give-back)."""
    return ((((p * 4 + t) * 3 + o) * 3 + g) * 2 + s) * 3 + b


# ---- paths ------------------------------------------------------------------------------------------
@dataclass
class EntryPath:
    """One entry and the market after its fill, one row per TF1 close up to the time stop."""

    side: int
    entry: float  # ticks, average fill price
    qty: int
    initial_stop: int
    target: int  # 0 = none
    horizon_ns: int  # time stop after the fill
    tick_value: float
    exit_fee_per_lot: float  # taker fee of an exit, currency per lot
    entry_fees: float  # currency
    group: int
    t_ns: np.ndarray  # time since the fill
    bid: np.ndarray
    ask: np.ndarray
    sigma1: np.ndarray  # ticks
    swing: np.ndarray  # ticks, the protective extreme (0: none)
    flow: np.ndarray  # ε·ofi_z(10 s)
    label: str = ""

    @property
    def risk(self) -> float:
        return abs(self.entry - self.initial_stop)

    def mids(self) -> np.ndarray:
        return (self.bid + self.ask) / 2.0


class TripView(Protocol):
    """What the agent reads of the execution stage's round trip (never written here, except ``stop`` by
    the stage itself)."""

    trip_id: str
    instrument_id: int
    side: int
    qty: int
    exited: int
    initial_stop: int
    stop: int
    target: int
    time_stop_at: int
    regime: str
    fees: float

    @property
    def entry_price(self) -> float: ...


@dataclass
class _Tracked:
    trip: TripView
    side: int
    fill_ts: int
    horizon_ns: int
    regime: str
    rows: list = field(default_factory=list)
    next_close: int = 0
    done: bool = False


class _Market:
    """Per-instrument TF1 closes of the mid: σ1, swings and the 10 s flow z-score."""

    def __init__(self) -> None:
        self.next_close = 0
        self.mids: deque[float] = deque(maxlen=1801)  # 30 min of TF1 closes
        self.d1: deque[float] = deque(maxlen=60)
        self.d10: deque[float] = deque(maxlen=1800)
        self.sigma1 = 0.0
        self.flow = 0.0

    def close(self, mid: float) -> None:
        mids = self.mids
        if mids:
            self.d1.append(mid - mids[-1])
        if len(mids) >= 10:
            self.d10.append(mid - mids[-10])
        mids.append(mid)
        self.sigma1 = float(np.std(self.d1)) if len(self.d1) > 1 else 0.0
        if len(self.d10) > 10:
            sd = float(np.std(self.d10))
            self.flow = self.d10[-1] / sd if sd > 0 else 0.0
        else:
            self.flow = 0.0

    def swing(self, side: int) -> float:
        last = list(self.mids)[-10:]
        if not last:
            return 0.0
        return min(last) if side > 0 else max(last)


class PathRecorder:
    """The execution stage's observer: stores an ``EntryPath`` for every filled entry (see module doc).

    ``exit_fee``: ``(instrument_id, price_ticks) -> currency per lot`` of a taker exit;
    ``default_horizon_ns``: the path length of an entry without a time stop.
    """

    def __init__(self, tick_value: dict[int, float], exit_fee, default_horizon_ns: int = 60 * NS,
                 label: str = "") -> None:
        self.tick_value = tick_value
        self.exit_fee = exit_fee
        self.default_horizon_ns = default_horizon_ns
        self.label = label
        self.markets: dict[int, _Market] = {}
        self.open: dict[int, list[_Tracked]] = {}
        self.seen: set[str] = set()
        self.closed: dict[str, TripView] = {}
        self.finished: list[tuple[int, _Tracked]] = []

    def on_step(self, instrument_id: int, ts: int, quote, trips) -> None:
        bid, ask = quote
        if bid is None or ask is None or bid >= ask:
            return
        market = self.markets.get(instrument_id)
        if market is None:
            market = self.markets[instrument_id] = _Market()
        mid = (bid + ask) / 2.0
        if ts >= market.next_close:
            if market.next_close:
                market.close(mid)
            market.next_close = (ts // TF1_NS + 1) * TF1_NS
        tracked = self.open.setdefault(instrument_id, [])
        for trip in trips:
            if trip.qty > 0 and trip.trip_id not in self.seen:
                self.seen.add(trip.trip_id)
                horizon = (trip.time_stop_at - ts) if trip.time_stop_at else self.default_horizon_ns
                tracked.append(_Tracked(trip, trip.side, ts, max(horizon, TF1_NS), trip.regime, next_close=ts))
        for item in tracked:
            if ts < item.next_close:
                continue
            elapsed = ts - item.fill_ts
            item.rows.append((elapsed, bid, ask, market.sigma1, market.swing(item.side), item.side * market.flow))
            item.next_close = (ts // TF1_NS + 1) * TF1_NS
            if elapsed >= item.horizon_ns:
                item.done = True
        if any(item.done for item in tracked):
            self.finished += [(instrument_id, i) for i in tracked if i.done]
            self.open[instrument_id] = [i for i in tracked if not i.done]

    def on_close(self, trip) -> None:
        self.closed[trip.trip_id] = trip

    def paths(self) -> list[EntryPath]:
        """Every entry's path (those cut by the end of data included, shorter), in fill order."""
        items = self.finished + [(iid, i) for iid, lst in self.open.items() for i in lst]
        items.sort(key=lambda x: (x[1].fill_ts, x[1].trip.trip_id))
        return [p for p in (self._path(iid, item) for iid, item in items) if p is not None]

    def take_finished(self) -> list[EntryPath]:
        """The paths that reached their time stop since the last call."""
        done, self.finished = self.finished, []
        return [p for p in (self._path(iid, item) for iid, item in done) if p is not None]

    def _path(self, iid: int, item: _Tracked) -> EntryPath | None:
        trip = item.trip
        if not item.rows or not trip.initial_stop or not trip.qty:
            return None
        entry = trip.entry_price
        if abs(entry - trip.initial_stop) <= 0:
            return None
        rows = np.array(item.rows, dtype=float)
        fee = float(self.exit_fee(iid, entry))
        return EntryPath(
            side=item.side, entry=float(entry), qty=int(trip.qty), initial_stop=int(trip.initial_stop),
            target=int(trip.target or 0), horizon_ns=item.horizon_ns, tick_value=self.tick_value[iid],
            exit_fee_per_lot=fee, entry_fees=_entry_fees(trip, fee), group=regime_group(item.regime, item.side),
            t_ns=rows[:, 0].astype(np.int64), bid=rows[:, 1], ask=rows[:, 2], sigma1=rows[:, 3],
            swing=rows[:, 4], flow=rows[:, 5], label=f"{self.label}{trip.trip_id}")


def _entry_fees(trip, exit_fee_per_lot: float) -> float:
    """The entry's own fees: the trip's fees less its exits' (taker) fees when it has closed."""
    return float(trip.fees) - exit_fee_per_lot * float(trip.exited)


# ---- one episode ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExitParams:
    cost_ticks: int = 1  # breakeven = entry ± this
    trail_sigmas: float = 2.0  # the trailing-stop policy's distance in σ of the 1-min mid change (σ1·√60)
    trail_min_ticks: float = 1.0


@dataclass
class Episode:
    net_r: float
    hold_s: float
    transitions: list  # (state, action, reward, next state or -1)


class _Precomputed:
    """Policy-independent per-step state bins of a path (all but the size bit)."""

    def __init__(self, path: EntryPath) -> None:
        self.path = path
        mid = path.mids()
        risk = path.risk
        pnl = path.side * (mid - path.entry) / risk
        mfe = np.maximum.accumulate(np.maximum(pnl, 0.0))
        frac = path.t_ns / float(path.horizon_ns)
        self.mid = mid
        self.pnl = pnl
        base = []
        for k in range(len(mid)):
            p, t, o = pnl_bin(pnl[k]), time_bin(frac[k]), ofi_bin(path.flow[k])
            b = giveback_bin(mfe[k], pnl[k])
            base.append((state_index(p, t, o, path.group, FULL, b), state_index(p, t, o, path.group, HALF, b)))
        self.states = base


def valid_actions(path: EntryPath, k: int, mid: float, open_qty: int, stop: float, params: ExitParams) -> list[int]:
    """The actions allowed at step ``k`` (masking rules of SPEC 7)."""
    side = path.side
    exit_px = path.bid[k] if side > 0 else path.ask[k]
    out = [HOLD]
    if open_qty == path.qty and path.qty >= 2:
        out.append(EXIT_HALF)
    out.append(EXIT_ALL)
    be = breakeven(path, params)
    if _tightens(side, stop, be) and (exit_px - be) * side > 0:
        out.append(STOP_TO_BREAKEVEN)
    tr = trail_level(path, k, mid)
    if _tightens(side, stop, tr) and (exit_px - tr) * side > 0:
        out.append(TRAIL)
    return out


def breakeven(path: EntryPath, params: ExitParams) -> float:
    if path.side > 0:
        return math.ceil(path.entry) + params.cost_ticks
    return math.floor(path.entry) - params.cost_ticks


def trail_level(path: EntryPath, k: int, mid: float) -> float:
    """``mid ∓ 1·σ1`` or the last swing, whichever is tighter (a long: the higher)."""
    level = mid - path.side * max(path.sigma1[k], 1.0)
    swing = path.swing[k]
    if swing:
        level = max(level, swing) if path.side > 0 else min(level, swing)
    return level


def _tightens(side: int, current: float, new: float) -> bool:
    return (new - current) * side > 0


def run_episode(pre: _Precomputed, policy, params: ExitParams, *, use_stop: bool = True,
                use_target: bool = False, trailing: bool = False) -> Episode:
    """Walk one path under ``policy(k, state, valid) -> action`` (None: always HOLD).

    The stop (initial, moved by the policy's actions or by ``trailing``) and, with ``use_target``, the
    target are checked at every close; the last row (the time stop, or the end of data) forces the
    exit. Exits fill at the bid (long) / ask (short) with the taker fee.
    """
    path = pre.path
    side, tv, q0 = path.side, path.tick_value, path.qty
    scale = path.risk * tv * q0
    n = len(pre.mid)
    cash = -path.entry_fees  # realised, currency
    open_qty = q0
    stop = float(path.initial_stop)
    transitions: list = []

    def equity(k: int) -> float:
        return cash + side * open_qty * (pre.mid[k] - path.entry) * tv

    def sell(k: int, lots: int) -> None:
        nonlocal cash, open_qty
        px = path.bid[k] if side > 0 else path.ask[k]
        cash += side * lots * (px - path.entry) * tv - lots * path.exit_fee_per_lot
        open_qty -= lots

    def forced(k: int) -> None:
        px = path.bid[k] if side > 0 else path.ask[k]
        if k == n - 1 or (use_stop and (px - stop) * side <= 0) or \
                (use_target and path.target and (px - path.target) * side >= 0):
            sell(k, open_qty)

    k = 0
    forced(0)
    prev = equity(0) if open_qty > 0 else cash
    while open_qty > 0:
        if trailing:
            level = pre.mid[k] - side * max(params.trail_sigmas * path.sigma1[k] * math.sqrt(60.0),
                                            params.trail_min_ticks)
            if _tightens(side, stop, level):
                stop = level
        s = pre.states[k][FULL if open_qty == q0 else HALF]
        action = HOLD
        if policy is not None:
            valid = valid_actions(path, k, pre.mid[k], open_qty, stop, params)
            action = policy(k, s, valid)
        if action == EXIT_ALL:
            sell(k, open_qty)
        elif action == EXIT_HALF:
            sell(k, q0 // 2)
        elif action == STOP_TO_BREAKEVEN:
            stop = breakeven(path, params)
        elif action == TRAIL:
            stop = trail_level(path, k, pre.mid[k])
        if open_qty > 0:
            k += 1
            forced(k)
        now = equity(k) if open_qty > 0 else cash
        transitions.append((s, action, (now - prev) / scale,
                            pre.states[k][FULL if open_qty == q0 else HALF] if open_qty > 0 else -1))
        prev = now
    return Episode(net_r=cash / scale, hold_s=float(path.t_ns[k]) / NS, transitions=transitions)


# ---- learning ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainParams:
    max_epochs: int = 300
    min_epochs: int = 30  # the convergence rule applies from here (by default once ε is at its floor)
    epsilon_epochs: int = 30  # ε reaches epsilon_min after this many epochs
    epsilon_min: float = 0.05
    seed: int = 0


class QTable:
    """Q(s, a) and the visit counts n(s, a) of the 1,512 states x 5 actions."""

    def __init__(self) -> None:
        self.q = np.zeros((N_STATES, N_ACTIONS))
        self.n = np.zeros((N_STATES, N_ACTIONS), dtype=np.int64)

    def update(self, s: int, a: int, r: float, s_next: int) -> float:
        """``Q ← Q + α_n (r + γ max_a' Q(s', a') − Q)`` with ``α_n = 1/(1 + n(s,a))^0.6``; n counts this
        visit after the update (the first visit has α = 1). ``s_next = -1``: terminal."""
        alpha = 1.0 / (1.0 + self.n[s, a]) ** ALPHA_POWER
        target = r + (GAMMA * float(self.q[s_next].max()) if s_next >= 0 else 0.0)
        self.q[s, a] += alpha * (target - self.q[s, a])
        self.n[s, a] += 1
        return float(self.q[s, a])

    def greedy(self, s: int, valid: list[int]) -> int:
        """The best valid action (ties: the first, so an unvisited state holds)."""
        row = self.q[s]
        return max(valid, key=lambda a: (row[a], -a))

    def policy(self) -> np.ndarray:
        """Greedy action of every state over the actions its size allows (EXIT_HALF only when full)."""
        q = self.q.copy()
        half = np.array([(i // 3) % 2 == HALF for i in range(N_STATES)])
        q[half, EXIT_HALF] = -np.inf
        return np.argmax(q, axis=1)

    def visited(self) -> np.ndarray:
        return self.n.sum(axis=1) > 0


def policy_change(before: np.ndarray, after: np.ndarray, visited: np.ndarray) -> float:
    """Share of the visited states whose greedy action differs (0 with none visited)."""
    count = int(visited.sum())
    return float((before[visited] != after[visited]).sum()) / count if count else 0.0


def epsilon(epoch: int, params: TrainParams) -> float:
    """1.0 at epoch 0, exponential decay to ``epsilon_min`` at ``epsilon_epochs``, then flat."""
    rate = params.epsilon_min ** (1.0 / max(params.epsilon_epochs, 1))
    return max(params.epsilon_min, rate ** epoch)


@dataclass
class TrainResult:
    table: QTable
    epochs: int
    converged: bool
    changes: list[float]


def train(paths: list[EntryPath], params: TrainParams = TrainParams(),
          exit_params: ExitParams = ExitParams()) -> TrainResult:
    """Off-policy ε-greedy replay of ``paths`` until the greedy policy is stable (see module doc)."""
    table = QTable()
    rng = np.random.default_rng(params.seed)
    pre = [_Precomputed(p) for p in paths]
    changes: list[float] = []
    before = table.policy()
    converged = False
    epoch = 0
    for epoch in range(1, params.max_epochs + 1):
        eps = epsilon(epoch - 1, params)

        def act(k: int, s: int, valid: list[int], eps: float = eps) -> int:
            if rng.random() < eps:
                return valid[int(rng.integers(len(valid)))]
            return table.greedy(s, valid)

        for index in rng.permutation(len(pre)):
            episode = run_episode(pre[index], act, exit_params)
            for s, a, r, s_next in episode.transitions:
                table.update(s, a, r, s_next)
        after = table.policy()
        change = policy_change(before, after, table.visited())
        changes.append(change)
        before = after
        if epoch >= params.min_epochs and change < CONVERGED_SHARE:
            converged = True
            break
    return TrainResult(table, epoch, converged, changes)


# ---- evaluation -------------------------------------------------------------------------------------
def policy_results(paths: list[EntryPath], table: QTable | None,
                   exit_params: ExitParams = ExitParams()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-trade net R and holding seconds of each of the four policies on the same ``paths``."""
    out: dict[str, tuple[list, list]] = {name: ([], []) for name in POLICIES}
    for path in paths:
        pre = _Precomputed(path)
        runs = {
            "fixed_bracket": run_episode(pre, None, exit_params, use_target=True),
            "time_stop": run_episode(pre, None, exit_params, use_stop=False),
            "trailing_stop": run_episode(pre, None, exit_params, trailing=True),
        }
        if table is not None:
            runs["q_agent"] = run_episode(pre, lambda k, s, valid: table.greedy(s, valid), exit_params)
        for name, episode in runs.items():
            out[name][0].append(episode.net_r)
            out[name][1].append(episode.hold_s)
    return {name: (np.array(r, dtype=float), np.array(h, dtype=float)) for name, (r, h) in out.items()
            if name != "q_agent" or table is not None}


def max_drawdown_r(r: np.ndarray) -> float:
    """Largest fall of the cumulative per-trade R from its running peak (the peak starts at 0)."""
    if not len(r):
        return 0.0
    equity = np.concatenate(([0.0], np.cumsum(r)))
    return float((np.maximum.accumulate(equity) - equity).max())


def metrics(r: np.ndarray, hold_s: np.ndarray) -> dict:
    """Mean net R, Sharpe of per-trade R (mean / sd), max drawdown in R, win rate, mean holding time."""
    n = len(r)
    sd = float(r.std(ddof=1)) if n > 1 else 0.0
    return {"trades": n, "mean_r": float(r.mean()) if n else 0.0,
            "sharpe": float(r.mean()) / sd if sd > 0 else 0.0, "max_dd_r": max_drawdown_r(r),
            "win_rate": float((r > 0).mean()) if n else 0.0, "mean_hold_s": float(hold_s.mean()) if n else 0.0}


def paired_test(diff: np.ndarray, draws: int = 10_000, seed: int = 0) -> dict:
    """Paired bootstrap of the mean difference (one-sided p of mean <= 0) and Wilcoxon signed-rank
    (alternative: greater)."""
    from scipy.stats import wilcoxon

    n = len(diff)
    if n == 0:
        return {"n": 0, "mean_diff": 0.0, "ci95": [0.0, 0.0], "p_bootstrap": 1.0, "p_wilcoxon": 1.0}
    rng = np.random.default_rng(seed)
    means = np.empty(draws)
    for start in range(0, draws, 1000):
        size = min(1000, draws - start)
        means[start:start + size] = diff[rng.integers(0, n, size=(size, n))].mean(axis=1)
    p_boot = (int((means <= 0).sum()) + 1) / (draws + 1)
    p_w = float(wilcoxon(diff, alternative="greater", zero_method="wilcox").pvalue) if np.any(diff != 0) else 1.0
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"n": n, "mean_diff": float(diff.mean()), "ci95": [float(lo), float(hi)], "p_bootstrap": p_boot,
            "p_wilcoxon": p_w}


def decide(agent: dict, bracket: dict, test: dict, alpha: float = 0.05) -> tuple[bool, str]:
    """Accept the agent only if its mean R is higher with both p < alpha and its drawdown in R is not
    worse; the reason names the first rule that failed."""
    if test["n"] == 0:
        return False, "no held-out trades: the fixed bracket ships"
    if agent["mean_r"] <= bracket["mean_r"]:
        return False, (f"the agent's mean R {agent['mean_r']:+.3f} does not improve on the bracket's "
                       f"{bracket['mean_r']:+.3f}: the fixed bracket ships")
    if test["p_bootstrap"] >= alpha or test["p_wilcoxon"] >= alpha:
        return False, (f"mean R improves by {test['mean_diff']:+.3f} but not significantly (bootstrap p "
                       f"{test['p_bootstrap']:.3f}, Wilcoxon p {test['p_wilcoxon']:.3f}): the fixed bracket ships")
    if agent["max_dd_r"] > bracket["max_dd_r"] + 1e-9:  # equal drawdowns differ in the last bits
        return False, (f"mean R improves significantly but the drawdown is worse ({agent['max_dd_r']:.2f} R "
                       f"vs {bracket['max_dd_r']:.2f} R): the fixed bracket ships")
    return True, (f"mean R improves by {test['mean_diff']:+.3f} (bootstrap p {test['p_bootstrap']:.4f}, Wilcoxon "
                  f"p {test['p_wilcoxon']:.4f}) and the drawdown is not worse: the agent is enabled")


def compare(paths: list[EntryPath], table: QTable, exit_params: ExitParams = ExitParams(), draws: int = 10_000,
            seed: int = 0) -> dict:
    """The four policies' metrics on ``paths``, the paired test agent vs bracket, and the decision."""
    results = policy_results(paths, table, exit_params)
    figures = {name: metrics(r, h) for name, (r, h) in results.items()}
    diff = results["q_agent"][0] - results["fixed_bracket"][0]
    test = paired_test(diff, draws, seed)
    accepted, reason = decide(figures["q_agent"], figures["fixed_bracket"], test)
    return {"policies": figures, "paired_test": test, "decision": "q_agent" if accepted else "fixed_bracket",
            "accepted": accepted, "reason": reason}


# ---- the table on disk --------------------------------------------------------------------------------
def save_table(table: QTable, path) -> str:
    """Write Q and n as a ``.npz`` of plain arrays (no pickle); return the file's SHA-256."""
    import io
    from pathlib import Path

    from ml.registry import sha256_of

    buffer = io.BytesIO()
    np.savez(buffer, q=table.q, n=table.n)
    data = buffer.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return sha256_of(data)


def load_table(path, expected_sha256: str | None) -> QTable:
    """Load a registered table, refusing it unless its SHA-256 matches (arrays only: ``allow_pickle=False``).

    Raises:
        ModelRefused: unknown, missing, modified or not a table of the right shape.
    """
    import io
    from pathlib import Path

    from ml.registry import ModelRefused, verified_bytes

    path = Path(path)
    data = verified_bytes(path, expected_sha256, "exit table")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            q, n = arrays["q"], arrays["n"]
    except Exception as exc:  # a damaged archive: numpy raises many kinds
        raise ModelRefused(f"exit table {path}: not a readable table ({type(exc).__name__}); refusing to load it") \
            from None
    if q.shape != (N_STATES, N_ACTIONS) or n.shape != (N_STATES, N_ACTIONS):
        raise ModelRefused(f"exit table {path}: shape {q.shape}, expected {(N_STATES, N_ACTIONS)}; refusing to load it")
    table = QTable()
    table.q, table.n = q.astype(float), n.astype(np.int64)
    return table


# ---- live exits -------------------------------------------------------------------------------------
class _Live:
    __slots__ = ("fill_ts", "horizon_ns", "mfe", "next_close", "group")

    def __init__(self, fill_ts: int, horizon_ns: int, group: int) -> None:
        self.fill_ts = fill_ts
        self.horizon_ns = horizon_ns
        self.mfe = 0.0
        self.next_close = fill_ts
        self.group = group


class LiveExitAgent:
    """The learned table managing open trips in a run: the greedy valid action at each TF1 close of the
    instrument, on the state the replay uses (same bins, same σ1, swing and flow estimates)."""

    def __init__(self, table: QTable, params: ExitParams = ExitParams(), default_horizon_ns: int = 60 * NS) -> None:
        self.table = table
        self.params = params
        self.default_horizon_ns = default_horizon_ns
        self.markets: dict[int, _Market] = {}
        self.trips: dict[str, _Live] = {}

    def on_market(self, instrument_id: int, ts: int, quote) -> None:
        bid, ask = quote
        if bid is None or ask is None or bid >= ask:
            return
        market = self.markets.get(instrument_id)
        if market is None:
            market = self.markets[instrument_id] = _Market()
        if ts >= market.next_close:
            if market.next_close:
                market.close((bid + ask) / 2.0)
            market.next_close = (ts // TF1_NS + 1) * TF1_NS

    def decide(self, trip: TripView, ts: int, bid: int, ask: int) -> tuple[int, int] | None:
        """``(action, new stop)`` for an open trip at a TF1 close, None between closes."""
        live = self.trips.get(trip.trip_id)
        if live is None:
            horizon = (trip.time_stop_at - ts) if trip.time_stop_at else self.default_horizon_ns
            live = self.trips[trip.trip_id] = _Live(ts, max(horizon, TF1_NS), regime_group(trip.regime, trip.side))
        if ts < live.next_close:
            return None
        live.next_close = (ts // TF1_NS + 1) * TF1_NS
        market = self.markets.get(trip.instrument_id)
        if market is None or not trip.initial_stop:
            return None
        side, entry = trip.side, trip.entry_price
        risk = abs(entry - trip.initial_stop)
        if risk <= 0:
            return None
        mid = (bid + ask) / 2.0
        pnl = side * (mid - entry) / risk
        live.mfe = max(live.mfe, pnl)
        size = FULL if trip.exited == 0 else HALF
        s = state_index(pnl_bin(pnl), time_bin((ts - live.fill_ts) / live.horizon_ns), ofi_bin(side * market.flow),
                        live.group, size, giveback_bin(live.mfe, pnl))
        exit_px = bid if side > 0 else ask
        be = (math.ceil(entry) + self.params.cost_ticks) if side > 0 else (math.floor(entry) - self.params.cost_ticks)
        trail = mid - side * max(market.sigma1, 1.0)
        swing = market.swing(side)
        if swing:
            trail = max(trail, swing) if side > 0 else min(trail, swing)
        trail = math.floor(trail) if side > 0 else math.ceil(trail)  # stops are whole ticks
        valid = [HOLD]
        if size == FULL and trip.qty >= 2:
            valid.append(EXIT_HALF)
        valid.append(EXIT_ALL)
        if _tightens(side, trip.stop, be) and (exit_px - be) * side > 0:
            valid.append(STOP_TO_BREAKEVEN)
        if _tightens(side, trip.stop, trail) and (exit_px - trail) * side > 0:
            valid.append(TRAIL)
        action = self.table.greedy(s, valid)
        stop = be if action == STOP_TO_BREAKEVEN else (trail if action == TRAIL else int(trip.stop))
        return action, int(stop)

    def forget(self, trip_id: str) -> None:
        self.trips.pop(trip_id, None)


class ShadowLearner:
    """Shadow mode: a copy of a registered table keeps learning from this run's entries while the run's
    exits stay as configured. Each entry's path, once it reaches its time stop, is replayed off-policy
    (ε-greedy at ``epsilon``) with the same update as training; ``finish`` also learns from the paths the
    end of data cut. It is the execution stage's observer and changes no order, fill or row."""

    def __init__(self, table: QTable, recorder: PathRecorder, params: ExitParams = ExitParams(),
                 epsilon: float = 0.05, seed: int = 0) -> None:
        self.table = table
        self.recorder = recorder
        self.params = params
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)
        self.learned = 0

    def on_step(self, instrument_id: int, ts: int, quote, trips) -> None:
        self.recorder.on_step(instrument_id, ts, quote, trips)
        if self.recorder.finished:
            self._learn(self.recorder.take_finished())

    def on_close(self, trip) -> None:
        self.recorder.on_close(trip)

    def finish(self) -> int:
        """Learn from the paths still open (cut by the end of data); return the paths learned from."""
        rest = [(iid, item) for iid, items in self.recorder.open.items() for item in items]
        self.recorder.open = {}
        self.recorder.finished.extend(rest)
        self._learn(self.recorder.take_finished())
        return self.learned

    def _learn(self, paths: list[EntryPath]) -> None:
        table, rng, eps = self.table, self.rng, self.epsilon

        def act(k: int, s: int, valid: list[int]) -> int:
            if rng.random() < eps:
                return valid[int(rng.integers(len(valid)))]
            return table.greedy(s, valid)

        for path in paths:
            for s, a, r, s_next in run_episode(_Precomputed(path), act, self.params).transitions:
                table.update(s, a, r, s_next)
            self.learned += 1
