"""F21 iceberg / hidden liquidity at one price: the replenishment test (SPEC section 2, F21).

Idea: an iceberg shows a small peak at one price and, each time the peak is executed, shows the
next one within milliseconds. Ordinary limit orders also arrive there now and then, so the
detector asks how often a refill of that size would follow a depletion *by chance*, and fires when
the refills are far more regular than that. Hidden executions at one price (a public feed marks
executions of non-displayed orders) are evidence of hidden liquidity of their own.

Definitions implemented (quoting SPEC where followed):
- *Depletion* at (side, p): "a trade that leaves the displayed size at p <= 10% of its pre-trade
  value (or trade size > displayed size)", decided per atomic event (at its ``LAST``) over the
  volume that event executed at p.
- *Refill*: "a size increase at p within delta = 50 ms after a depletion, with p not traded
  through, and refill size within +-25% of the median refill so far (the first refill sets the
  reference)". At most one refill counts per depletion.
- Test: ``pvalue = P[Binomial(n_d, p0) >= n_r]`` (an exact sum), ``score =
  -log10(pvalue)`` (at most 300); **event** if ``pvalue < 0.01`` and ``n_r >= 3``. Because the
  first refill qualifies whatever its size (it sets the reference), the test conditions on it:
  ``n_r - 1`` successes among the depletions after the one it answered.
- Estimates: ``peak`` = median refill; ``hidden_volume = executed - displayed`` (0 when negative):
  every lot executed at p (hidden executions included, so LOBSTER's type 5 counts) minus the
  displayed size at p when the episode began and every displayed increase seen at p since, less
  what of it still rests at p (not executed yet: SPEC's formula without this correction is
  negative whenever a refill is showing).
- L3 (order ids; detected once an ``OrderAdd`` or ``OrderExecute`` is seen): the chain is exact.
  A *synthetic* link is an order fully executed at p followed, within delta, by a new order at the
  same side and price whose size is within +-10% of the executed order's; a *native* link is an
  execution larger than the resting order's displayed size (the book counts it as ``overdrawn``
  on a known order). The chain runs the same Binomial test: trials = atomic events that fully
  executed an order at p (plus native links, impossible under H0), successes = links. The chain
  type of a detection is the test that fired: "synthetic"/"native", else "statistical".
- *Hidden runs* (our addition): hidden executions (``Trade.hidden``: LOBSTER type 5, ITCH
  non-displayed executions) at (side, p) with gaps <= ``hidden_gap_s`` (5 s) form a run; from its
  ``hidden_min_execs``-th execution (2) on, every hidden execution of the run emits a detection
  (chain type "hidden"). Its ``pvalue`` is a burst test, ``P[Poisson(lambda_H T) >= n - 1]`` with
  ``lambda_H`` the side's hidden executions per second (last 30 min) and ``T`` the run's span so
  far (at least 1 ms); it is reported, not gated: on the AMZN day gating it only cost recall.
  Scored as issue 14 item 5 asks on the AMZN 2012-06-21 day (5 and 1 levels alike: the same
  messages), these detections hit 195 of 195 hidden-liquidity episodes with precision 0.50 (0.46
  counting the day's displayed-iceberg detections too), where flagging every price with a hidden
  execution in the last 5 s has precision 0.19 at the same recall (a hit falls strictly between
  the episode's first and last execution in stream order; compared by timestamp, where many
  executions share one, both recalls drop to 0.76 and the precisions to 0.41 and 0.16).

The null (a measured deviation from SPEC's ``lambda_L``): SPEC takes ``p0 = (1 - exp(-lambda_L
delta)) * pi_size`` with ``lambda_L`` the add rate at p's distance from the best over 30 min and
``pi_size`` the share of recent adds in the size band. A depleted best is re-quoted far more often
than the unconditional add rate says (queue reaction: an emptied level is what liquidity
providers refill first), and that made the test fire on ordinary flow: in three simulated
20-minute background sessions it gave 220 false detections. We estimate the chance directly:
``p0 = P(answered) * pi_size``, where ``P(answered)`` is the share of the last 30 min of trials (on
every price) that saw any displayed size arrive at their price within delta (with a uniform
prior; chain trials apart by whether they emptied the level), and ``pi_size`` the share of those
answering arrivals whose size falls in the band (with a +1 prior). Together with conditioning on
the first refill, the same sessions gave 23 false detections (8 with ``min_peak``, below), with
recall on the iceberg presets unchanged. For the chain, ``p0`` averages each trial's own chance
(its executed sizes' bands).

Episode life: an episode at (side, p) begins at its first depletion, full execution or native link
and ends when the opposite best reaches p ("traded_through"; a single aggressive order sweeping
past p does not end it: a synthetic iceberg refills after such sweeps, which is "p not traded
through" as we read it), when a depletion that emptied the level gets no refill within delta
("exhausted"; SPEC S3 uses 2x the median refill delay, shorter; delta keeps the detector
consistent with its own refill definition), when the displayed peak of a detected L3 chain is
deleted ("cancelled"), or after ``idle_s`` without a depletion or refill ("expired"). A detected
episode emits an ``IcebergDetection`` when it first qualifies and again at every further
qualifying refill or link (``update`` counts them), and one ``IcebergEndDetection`` with the reason
when it ends, so exhaustion is visible to a strategy. Hidden runs end silently once the gap passes.

Other choices: an event needs an estimated peak of at least ``min_peak`` lots (2): one-lot orders
are the commonest size in our markets, a one-lot "refill" is what ordinary flow looks like, and the
size band (relative) cannot narrow it; over 20 seeds of the two iceberg presets this took precision
from 0.72 to 0.95 at the same recall (0.80) and halved the false detections of background
sessions. Exact prices, not bins (an iceberg refills at its own price; bins would merge
different orders). ``OrderModify`` is not read. L2 (``BookDelta``/``BookSnapshot`` plus ``Trade``):
the displayed size before a trade is the book's size at p when the trade arrives (trades precede
the book update that reflects them, as DBN MBP-10 sends them); a refill is a ``BookDelta`` raising
p above the size the episode expects; no L3 chain.

Nothing is emitted while the book is STALE, CROSSED or HALTED. Per event O(1) dict work at the
touched price; at a ``LAST`` a check of the most exposed episode price per side; idle episodes are
evicted at TF2 closes (at most ``max_levels`` kept).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from statistics import median

from engine.book import UNUSABLE
from engine.config.detectors import IcebergParams
from engine.detectors.arrivals import NS, ArrivalRate, RecentSizes
from engine.detectors.base import Detector, DetectorContext
from engine.events import BUY, SELL, BookDelta, Detection, OrderAdd, OrderCancel, OrderDelete, OrderExecute, Trade
from engine.features.bars import TF2

SYNTHETIC, NATIVE, STATISTICAL, HIDDEN = "synthetic", "native", "statistical", "hidden"
SCORE_CAP = 300.0  # -log10 of the smallest p-value reported
KEPT = 64  # refill and link sizes kept per episode (for medians)
# cells of the empirical null: trials, and trials answered by some displayed size at p within delta
STAT_TRIALS, STAT_ANSWERED, CHAIN_TRIALS, CHAIN_ANSWERED, EMPTY_TRIALS, EMPTY_ANSWERED = range(6)


class IcebergDetection(Detection, frozen=True, kw_only=True):
    """Iceberg or hidden liquidity at one price (``side`` = the passive side, ``price_lo = price_hi``).

    ``strength`` = ``score``; ``t_start`` = the episode's first depletion (or the run's first
    hidden execution).
    """

    pvalue: float  # replenishment test (hidden runs: burst test) p-value
    score: float  # -log10(pvalue), at most 300
    depletions: int  # trials of the test that fired (depletions, or L3 full executions; 0 for hidden runs)
    refills: int  # successes of that test (qualifying refills, or chain links; 0 for hidden runs)
    peak: int  # estimated peak D_hat: median refill or link size (0 when unknown, e.g. hidden runs)
    hidden_volume: int  # executed - displayed at p (>= 0), hidden executions included
    executed: int  # lots executed at p in the episode, hidden included
    chain_type: str  # "synthetic" | "native" | "statistical" | "hidden"
    hidden_execs: int  # hidden executions at p in the current run
    p0: float  # chance of a qualifying refill per trial under H0 (hidden runs: lambda_H * T)
    update: int  # 0 for the episode's first detection, then 1, 2, ... at each further refill


class IcebergEndDetection(Detection, frozen=True, kw_only=True):
    """A detected iceberg episode ended (``strength`` = its last score); evidence as at the end."""

    reason: str  # "exhausted" | "traded_through" | "cancelled" | "expired"
    depletions: int
    refills: int
    peak: int
    hidden_volume: int
    executed: int
    chain_type: str


class _Episode:
    """Displayed-liquidity evidence at one (side, price)."""

    __slots__ = ("side", "price", "t_start", "last_ts", "displayed", "executed", "level", "n_d", "n_r",
                 "n_d_first", "refills", "n_full", "n_chain", "n_native", "links", "chance", "until",
                 "stat_wait", "chain_sizes", "empty", "answered", "peak_oid", "detected", "chain_type",
                 "updates", "score")

    def __init__(self, side: int, price: int, ts: int, shown: int) -> None:
        self.side, self.price, self.t_start, self.last_ts = side, price, ts, ts
        self.displayed = shown  # D0, then every displayed increase seen at p
        self.executed = 0
        self.level = shown  # displayed size at p as the episode last saw it (L2 refills are increases over it)
        self.n_d = self.n_r = 0  # depletion/refill test
        self.n_d_first = 0  # depletions up to the one the first refill answered
        self.refills: list[int] = []
        self.n_full = self.n_chain = self.n_native = 0  # L3 chain test
        self.links: list[int] = []  # sizes of the chained orders
        self.chance = 0.0  # sum over chain trials of their chance of a link under H0
        self.until = 0  # deadline of the open trial (0: none open)
        self.stat_wait = False  # the open trial's depletion waits for its refill
        self.chain_sizes: list[int] = []  # sizes of the orders the open trial fully executed
        self.empty = False  # the open trial emptied the level
        self.answered = False  # some displayed size arrived at p in the open trial
        self.peak_oid = 0  # L3: the latest chained order (its deletion ends a detected episode)
        self.detected = False
        self.chain_type = ""
        self.updates = 0
        self.score = 0.0


class _HiddenRun:
    __slots__ = ("first", "last", "execs", "volume")

    def __init__(self, ts: int) -> None:
        self.first = self.last = ts
        self.execs = self.volume = 0


def binomial_pvalue(successes: int, trials: int, p0: float) -> float:
    """``P[Binomial(trials, p0) >= successes]``, summed exactly from the mode outward (terms in log
    space): the upper tail when ``successes`` is above the mean, else one minus the lower tail."""
    if successes <= 0:
        return 1.0
    if successes > trials or p0 <= 0.0:
        return 0.0
    if p0 >= 1.0:
        return 1.0
    n, k, odds = trials, successes, p0 / (1.0 - p0)

    def log_pmf(j: int) -> float:
        return (math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                + j * math.log(p0) + (n - j) * math.log1p(-p0))

    total = 0.0
    if k > n * p0:  # upper tail, terms falling from j = k
        term = math.exp(log_pmf(k))
        for j in range(k, n + 1):
            total += term
            if term <= total * 1e-17:
                break
            term *= (n - j) / (j + 1) * odds
        return min(1.0, total)
    term = math.exp(log_pmf(k - 1))  # lower tail, terms falling from j = k - 1 down
    for j in range(k - 1, -1, -1):
        total += term
        if term <= total * 1e-17:
            break
        term *= j / ((n - j + 1) * odds)
    return max(0.0, 1.0 - total)


def poisson_tail(k: int, mu: float) -> float:
    """``P[Poisson(mu) >= k]``, summed exactly (the upper terms when ``mu < k``, else ``1 -`` the lower)."""
    if k <= 0:
        return 1.0
    if mu <= 0.0:
        return 0.0
    if mu < k:
        term = math.exp(k * math.log(mu) - mu - math.lgamma(k + 1))
        total, j = 0.0, k
        while term > total * 1e-17:
            total += term
            j += 1
            term *= mu / j
        return min(1.0, total)
    term, lower = math.exp(-mu), 0.0
    for j in range(k):
        lower += term
        term *= mu / (j + 1)
    return max(0.0, 1.0 - lower)


def score_of(pvalue: float) -> float:
    """``-log10(pvalue)``, at most ``SCORE_CAP``."""
    return SCORE_CAP if pvalue <= 10.0 ** -SCORE_CAP else min(SCORE_CAP, -math.log10(pvalue))


class IcebergDetector(Detector):
    """F21: icebergs and hidden liquidity at one price (see the module docstring)."""

    name = "iceberg"

    def __init__(self, context: DetectorContext, params: IcebergParams | None = None) -> None:
        super().__init__(context)
        self.params = p = params or IcebergParams()
        self.delta_ns = int(p.refill_ms * 1e6)
        self.idle_ns = int(p.idle_s * NS)
        self.gap_ns = int(p.hidden_gap_s * NS)
        self.iid = context.instrument.instrument_id
        self.l3 = False
        self.trials = ArrivalRate(6, p.null_window_s)
        self.answers = RecentSizes(p.size_sample)  # sizes that arrived at prices with an open trial
        self.hidden_rate = ArrivalRate(2, p.null_window_s)  # cell 0 bid, 1 ask
        self.episodes: dict[tuple[int, int], _Episode] = {}
        self.prices: dict[int, list[int]] = {BUY: [], SELL: []}  # episode prices per side, ascending
        self.runs: dict[tuple[int, int], _HiddenRun] = {}
        self.touched: dict[tuple[int, int], list[int]] = {}  # this atomic event: [executed, size before]
        self.full: dict[tuple[int, int], list[int]] = {}  # this atomic event: sizes of fully executed orders
        self.partial: dict[int, int] = {}  # L3: lots executed so far of orders still resting
        self.peaks: dict[int, _Episode] = {}  # L3: latest chained order of each detected episode
        self.awaiting: list[_Episode] = []
        self.overdrawn = 0
        self.unknown = 0

    def handlers(self) -> dict[type, Callable]:
        return {OrderAdd: self._on_add, OrderExecute: self._on_execute, OrderCancel: self._on_cancel,
                OrderDelete: self._on_delete, Trade: self._on_trade, BookDelta: self._on_delta}

    # ---- per event --------------------------------------------------------------------------------
    def _on_add(self, ev: OrderAdd) -> None:
        self.l3 = True
        ep = self.episodes.get((ev.side, ev.price))
        if ep is not None:
            self._arrival(ep, ev.size, ev.ts_recv, ev.order_id)

    def _on_delta(self, ev: BookDelta) -> None:
        if self.l3:  # an L3 feed's repair of a level: not an order arrival
            return
        ep = self.episodes.get((ev.side, ev.price))
        if ep is not None:
            new = self.book.size_at(ev.side, ev.price)
            increase, ep.level = new - ep.level, new
            if increase > 0:
                self._arrival(ep, increase, ev.ts_recv, 0)

    def _on_execute(self, ev: OrderExecute) -> None:
        self.l3 = True
        key = (ev.side, ev.price)
        touched = self.touched.get(key)
        if touched is None:
            self.touched[key] = [ev.size, 0]
        else:
            touched[0] += ev.size
        counters = self.book.counters
        known = counters.unknown_orders == self.unknown
        native = known and counters.overdrawn > self.overdrawn  # executed more than the order showed
        self.overdrawn, self.unknown = counters.overdrawn, counters.unknown_orders
        oid = ev.order_id
        if self.book.order(oid) is None:  # fully executed (or unknown to the book)
            done = self.partial.pop(oid, 0) + ev.size
            if known:
                self.full.setdefault(key, []).append(done)
        else:
            partial = self.partial
            partial[oid] = partial.get(oid, 0) + ev.size
            if len(partial) > self.params.size_sample:  # orders that left unseen: bounded memory
                del partial[next(iter(partial))]
        if native:
            ep = self._episode(ev.side, ev.price, ev.ts_recv, 0)
            ep.n_native += 1
            ep.last_ts = ev.ts_recv
            self._assess(ep, ev.ts_recv)

    def _on_cancel(self, ev: OrderCancel) -> None:
        if ev.order_id in self.peaks and self.book.order(ev.order_id) is None:
            self._end(self.peaks[ev.order_id], ev.ts_recv, "cancelled")

    def _on_delete(self, ev: OrderDelete) -> None:
        self.partial.pop(ev.order_id, None)
        if ev.order_id in self.peaks:
            self._end(self.peaks[ev.order_id], ev.ts_recv, "cancelled")

    def _on_trade(self, ev: Trade) -> None:
        side = -ev.aggressor
        if side == 0:
            return
        if ev.hidden:
            self._hidden(ev, side)
        elif not self.l3:  # L2: the trade arrives before the book update that reflects it
            key = (side, ev.price)
            touched = self.touched.get(key)
            if touched is None:
                self.touched[key] = [ev.size, self.book.size_at(side, ev.price)]
            else:
                touched[0] += ev.size

    # ---- depletions, refills, links -------------------------------------------------------------
    def on_last(self, ts: int) -> None:
        if self.touched:
            full = self.full
            for (side, price), (executed, pre) in self.touched.items():
                self._executed(side, price, executed, pre, full.get((side, price)), ts)
            self.touched.clear()
            full.clear()
        prices = self.prices
        if prices[BUY] or prices[SELL]:
            book = self.book
            bids, asks = prices[BUY], prices[SELL]
            if bids and book.ask_prices and bids[-1] >= book.ask_prices[0]:
                self._traded_through(BUY, bisect_left(bids, book.ask_prices[0]), len(bids), ts)
            if asks and book.bid_prices and asks[0] <= book.bid_prices[-1]:
                self._traded_through(SELL, 0, bisect_right(asks, book.bid_prices[-1]), ts)
        if self.awaiting:
            for ep in [ep for ep in self.awaiting if ep.until < ts]:
                self._close_trial(ep, ts)

    def _executed(self, side: int, price: int, executed: int, pre: int, full: list[int] | None, ts: int) -> None:
        """The atomic event executed ``executed`` displayed lots at (side, price), fully executing
        orders of the sizes in ``full`` (L3)."""
        if self.l3:
            post = self.book.size_at(side, price)
            pre = post + executed
        else:
            post = max(0, pre - executed)
        depleted = executed > pre or post <= self.params.depletion_frac * pre
        ep = self.episodes.get((side, price))
        if ep is None:
            if not depleted and not full:
                return
            ep = self._episode(side, price, ts, pre)
        ep.executed += executed
        ep.level = post
        if not depleted and not full:
            return
        ep.last_ts = ts
        if ep.until:
            self._close_trial(ep, ts, exhaust=False)
        trials = self.trials
        if depleted:
            ep.n_d += 1
            ep.stat_wait = True
            trials.add(STAT_TRIALS, ts)
        if full:
            cell = EMPTY_TRIALS if post == 0 else CHAIN_TRIALS
            trials.add(cell, ts)
            ep.n_full += 1
            ep.chain_sizes = full
            band = self.params.chain_band
            pi = min(1.0, sum(self._pi(size * (1 - band), size * (1 + band)) for size in full))
            ep.chance += self._answer_chance(cell) * pi
        ep.until, ep.empty, ep.answered = ts + self.delta_ns, post == 0, False
        self.awaiting.append(ep)

    def _arrival(self, ep: _Episode, size: int, ts: int, oid: int) -> None:
        """Displayed size ``size`` arrived at the episode's price: a refill or a link if one is awaited."""
        ep.displayed += size
        if not ep.until or ts > ep.until:
            return
        p = self.params
        self.answers.add(size)
        if not ep.answered:
            ep.answered = True
            if ep.stat_wait:
                self.trials.add(STAT_ANSWERED, ts)
            if ep.chain_sizes:
                self.trials.add(EMPTY_ANSWERED if ep.empty else CHAIN_ANSWERED, ts)
        success = False
        if ep.chain_sizes and any(abs(size - s) <= p.chain_band * s for s in ep.chain_sizes):
            ep.n_chain += 1
            ep.links.append(size)
            del ep.links[:-KEPT]
            ep.chain_sizes = []
            if ep.detected:
                self.peaks.pop(ep.peak_oid, None)
                self.peaks[oid] = ep
            ep.peak_oid = oid
            success = True
        if ep.stat_wait:
            reference = median(ep.refills) if ep.refills else size
            if abs(size - reference) <= p.refill_band * reference:
                if not ep.n_r:
                    ep.n_d_first = ep.n_d
                ep.n_r += 1
                ep.refills.append(size)
                del ep.refills[:-KEPT]
                ep.stat_wait = False
                success = True
        if success:
            ep.last_ts = ts
            if not ep.stat_wait and not ep.chain_sizes:
                ep.until = 0
                self.awaiting.remove(ep)
            self._assess(ep, ts)

    def _close_trial(self, ep: _Episode, ts: int, exhaust: bool = True) -> None:
        """The open trial got no (further) refill: close it; a detected, emptied level is exhausted."""
        exhausted = exhaust and ep.empty and ep.detected and (ep.stat_wait or bool(ep.chain_sizes))
        ep.until, ep.stat_wait, ep.chain_sizes = 0, False, []
        self.awaiting.remove(ep)
        if exhausted:
            self._end(ep, ts, "exhausted")

    # ---- the tests ------------------------------------------------------------------------------
    def _answer_chance(self, trials_cell: int) -> float:
        """Chance that some displayed size arrives at a depleted price within delta under H0: the
        share of recent trials of that kind (all prices) answered so, with a uniform prior."""
        trials = self.trials
        return (trials.count(trials_cell + 1) + 1) / (trials.count(trials_cell) + 2)

    def _pi(self, lo: float, hi: float) -> float:
        """Share of recent answering arrivals with a size in ``[lo, hi]``, with a +1 prior."""
        answers = self.answers
        return (answers.count(lo, hi) + 1) / (len(answers) + 1)

    def _assess(self, ep: _Episode, ts: int) -> None:
        """Run both tests; emit when one is significant with enough successes."""
        p = self.params
        found: tuple[float, float, int, int, int, str] | None = None
        if ep.n_r >= p.min_refills and median(ep.refills) >= p.min_peak:
            reference = median(ep.refills)
            pi = self._pi(reference * (1 - p.refill_band), reference * (1 + p.refill_band))
            p0 = self._answer_chance(STAT_TRIALS) * pi
            # the first refill set the reference (any size qualified): test the depletions after it
            pvalue = binomial_pvalue(ep.n_r - 1, ep.n_d - ep.n_d_first, p0)
            found = (pvalue, p0, ep.n_d, ep.n_r, int(median(ep.refills)), STATISTICAL)
        links = ep.n_chain + ep.n_native
        if links >= p.min_refills and (not ep.links or median(ep.links) >= p.min_peak):
            trials = ep.n_full + ep.n_native
            p0 = ep.chance / trials
            pvalue = binomial_pvalue(links, trials, p0)
            if found is None or pvalue <= found[0]:
                kind = NATIVE if ep.n_native > ep.n_chain else SYNTHETIC
                found = (pvalue, p0, trials, links, int(median(ep.links)) if ep.links else 0, kind)
        if found is None or found[0] >= p.alpha or self.book.state & UNUSABLE:
            return
        pvalue, p0, trials, successes, peak, kind = found
        score = score_of(pvalue)
        if not ep.detected and ep.peak_oid:
            self.peaks[ep.peak_oid] = ep
        ep.detected, ep.chain_type, ep.score = True, kind, score
        update, ep.updates = ep.updates, ep.updates + 1
        run = self.runs.get((ep.side, ep.price))
        self.emit(IcebergDetection(
            instrument_id=self.iid, ts_recv=ts, seq=self.book.last_seq, side=ep.side, price_lo=ep.price,
            price_hi=ep.price, strength=score, t_start=ep.t_start, pvalue=pvalue, score=score,
            depletions=trials, refills=successes, peak=peak, hidden_volume=self._hidden_volume(ep),
            executed=ep.executed, chain_type=kind, hidden_execs=run.execs if run is not None else 0, p0=p0,
            update=update))

    # ---- hidden executions ------------------------------------------------------------------------
    def _hidden(self, ev: Trade, side: int) -> None:
        ts, key = ev.ts_recv, (side, ev.price)
        cell = 0 if side == BUY else 1
        self.hidden_rate.add(cell, ts)
        ep = self.episodes.get(key)
        if ep is not None:
            ep.executed += ev.size
        run = self.runs.get(key)
        if run is None or ts - run.last > self.gap_ns:
            run = self.runs[key] = _HiddenRun(ts)
        run.execs += 1
        run.volume += ev.size
        run.last = ts
        if run.execs < self.params.hidden_min_execs or self.book.state & UNUSABLE:
            return
        mu = self.hidden_rate.rate(cell, ts) * max(ts - run.first, 1_000_000) / NS
        pvalue = poisson_tail(run.execs - 1, mu)
        score = score_of(pvalue)
        executed = ep.executed if ep is not None else run.volume
        displayed = ep.displayed - self.book.size_at(side, ev.price) if ep is not None else 0
        self.emit(IcebergDetection(
            instrument_id=self.iid, ts_recv=ts, seq=self.book.last_seq, side=side, price_lo=ev.price,
            price_hi=ev.price, strength=score, t_start=run.first, pvalue=pvalue, score=score,
            depletions=0, refills=0, peak=0,
            hidden_volume=max(run.volume, executed - displayed), executed=max(executed, run.volume),
            chain_type=HIDDEN, hidden_execs=run.execs, p0=mu, update=run.execs - self.params.hidden_min_execs))

    # ---- episode bookkeeping --------------------------------------------------------------------
    def _episode(self, side: int, price: int, ts: int, shown: int) -> _Episode:
        key = (side, price)
        ep = self.episodes.get(key)
        if ep is None:
            if len(self.episodes) >= self.params.max_levels:
                self._end(min(self.episodes.values(), key=lambda e: e.last_ts), ts, "expired")
            ep = self.episodes[key] = _Episode(side, price, ts, shown)
            insort(self.prices[side], price)
        return ep

    def _hidden_volume(self, ep: _Episode) -> int:
        """Executed minus the displayed size that has left the book (what still rests is not executed)."""
        return max(0, ep.executed - ep.displayed + self.book.size_at(ep.side, ep.price))

    def _traded_through(self, side: int, lo: int, hi: int, ts: int) -> None:
        for price in self.prices[side][lo:hi]:
            self._end(self.episodes[(side, price)], ts, "traded_through")

    def _end(self, ep: _Episode, ts: int, reason: str) -> None:
        key = (ep.side, ep.price)
        if self.episodes.get(key) is not ep:
            return
        del self.episodes[key]
        prices = self.prices[ep.side]
        del prices[bisect_left(prices, ep.price)]
        if ep.until:
            ep.until = 0
            self.awaiting.remove(ep)
        if not ep.detected:
            return
        self.peaks.pop(ep.peak_oid, None)
        if self.book.state & UNUSABLE:
            return
        statistical = ep.chain_type == STATISTICAL
        sizes = ep.refills if statistical else ep.links
        self.emit(IcebergEndDetection(
            instrument_id=self.iid, ts_recv=ts, seq=self.book.last_seq, side=ep.side, price_lo=ep.price,
            price_hi=ep.price, strength=ep.score, t_start=ep.t_start, reason=reason,
            depletions=ep.n_d if statistical else ep.n_full + ep.n_native,
            refills=ep.n_r if statistical else ep.n_chain + ep.n_native, peak=int(median(sizes)) if sizes else 0,
            hidden_volume=self._hidden_volume(ep), executed=ep.executed, chain_type=ep.chain_type))

    def on_bar(self, ts: int, frames: int) -> None:
        if self.awaiting:
            for ep in [ep for ep in self.awaiting if ep.until < ts]:
                self._close_trial(ep, ts)
        if frames & TF2:
            self.trials.roll(ts)
            self.hidden_rate.roll(ts)
            horizon = ts - self.idle_ns
            for ep in [ep for ep in self.episodes.values() if ep.last_ts < horizon and not ep.until]:
                self._end(ep, ts, "expired")
        if self.runs:
            gone = ts - self.gap_ns
            for key in [key for key, run in self.runs.items() if run.last < gone]:
                del self.runs[key]
