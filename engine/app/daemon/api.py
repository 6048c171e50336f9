"""The daemon's HTTP API (aiohttp): health, readiness, market and portfolio reads, runs, controls, metrics.

Every answer is JSON through orjson; every error is ``{"error": "..."}`` on one line with a 4xx/5xx
status (unknown symbol 404, bad parameter 400, missing or wrong token 401, body too large 413, too
many requests 429). Requests are limited per client address by a token bucket (``[daemon] rate_per_s``,
``rate_burst``) and in size (``max_request_bytes``). Control endpoints (``POST /api/control/...``) need
``Authorization: Bearer TOKEN`` with the token from the environment variable named by
``[daemon] token_env``; without a token set they are refused. The token is never logged: there is no
access log, and no log line carries request headers.
"""

from __future__ import annotations

import asyncio
import hmac
import time

import msgspec
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.app.daemon import stream
from engine.errors import ConfigError
from engine.logs import get_logger

MAX_LIMIT = 10_000  # rows one read returns at most


def json_response(data, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RateLimiter:
    """A token bucket per client address (bounded: the least recently seen addresses are forgotten)."""

    MAX_CLIENTS = 4096

    def __init__(self, per_s: float, burst: float) -> None:
        self.per_s, self.burst = per_s, burst
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str, now: float) -> bool:
        tokens, seen = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - seen) * self.per_s)
        allowed = tokens >= 1.0
        self.buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        if len(self.buckets) > self.MAX_CLIENTS:
            del self.buckets[next(iter(self.buckets))]
        return allowed


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be in [{low}, {high}], got {value}")
    return value


def build_app(daemon) -> web.Application:
    cfg = daemon.config.daemon
    limiter = RateLimiter(cfg.rate_per_s, cfg.rate_burst)

    @web.middleware
    async def guard(request: web.Request, handler):
        if not limiter.allow(request.remote or "?", time.monotonic()):
            return _error(429, "too many requests; slow down")
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, str(exc))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body larger than {cfg.max_request_bytes} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error(exc.status, exc.reason)
        except Exception as exc:  # noqa: BLE001 - one JSON line to the client, the details to the log
            get_logger().error("api_error", path=request.path, error=f"{type(exc).__name__}: {exc}")
            return _error(500, "internal error (see the daemon's log)")

    app = web.Application(middlewares=[guard], client_max_size=cfg.max_request_bytes)
    routes = Routes(daemon)
    app.add_routes([
        web.get("/healthz", routes.healthz),
        web.get("/readyz", routes.readyz),
        web.get("/metrics", routes.metrics),
        web.get("/api/instruments", routes.instruments),
        web.get("/api/book/{symbol}", routes.book),
        web.get("/api/trades/{symbol}", routes.trades),
        web.get("/api/signals", routes.signals),
        web.get("/api/positions", routes.positions),
        web.get("/api/runs", routes.runs),
        web.get("/api/control", routes.control_state),
        web.post("/api/control/strategies/{name}/pause", routes.pause),
        web.post("/api/control/strategies/{name}/resume", routes.resume),
        web.post("/api/control/flatten", routes.flatten),
        web.post("/api/control/kill-switch", routes.kill),
        web.post("/api/control/kill-switch/reset", routes.reset_kill),
        web.post("/api/control/risk", routes.risk),
        web.get("/api/stream", routes.stream),
        web.get("/", routes.dashboard),
        web.get("/static/{name}", routes.static),
    ])
    return app


class Routes:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    # --- reads -----------------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self.daemon.readiness()
        return json_response({"ready": not problems, "problems": problems}, 503 if problems else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.daemon.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def instruments(self, request: web.Request) -> web.Response:
        return json_response([self.daemon.instrument_info(live) for live in self.daemon.live.by_symbol.values()])

    def _symbol(self, request: web.Request):
        symbol = request.match_info["symbol"]
        live = self.daemon.live.by_symbol.get(symbol)
        if live is None:
            raise ApiError(404, f"unknown symbol {symbol!r}; see /api/instruments")
        return live

    async def book(self, request: web.Request) -> web.Response:
        live = self._symbol(request)
        cap = self.daemon.config.daemon.heatmap_levels
        levels = _int_param(request, "levels", min(10, cap), 1, cap)
        return json_response(self.daemon.book(live.definition.instrument_id, levels))

    async def trades(self, request: web.Request) -> web.Response:
        live = self._symbol(request)
        since = _int_param(request, "since", 0, 0, 2**63 - 1)
        limit = _int_param(request, "limit", 1000, 1, MAX_LIMIT)
        rows = [r for r in live.trades if r[3] > since]
        rows = rows[:limit] if since else rows[-limit:]  # paging forward from a cursor, else the latest
        scale = self.daemon.tick_size(live.definition)
        return json_response([{"seq": r[1], "ts_recv": r[3], "price": r[4] * scale, "price_ticks": r[4],
                               "size": r[5], "aggressor": r[6], "hidden": bool(r[9])} for r in rows])

    async def signals(self, request: web.Request) -> web.Response:
        since = _int_param(request, "since", 0, 0, 2**63 - 1)
        limit = _int_param(request, "limit", 1000, 1, MAX_LIMIT)
        rows = sorted((r for live in self.daemon.live.by_symbol.values() for r in live.signals if r[3] > since),
                      key=lambda r: (r[3], r[1], r[2]))
        rows = rows[:limit] if since else rows[-limit:]
        symbols = {live.definition.instrument_id: s for s, live in self.daemon.live.by_symbol.items()}
        return json_response([{"signal_id": r[0], "symbol": symbols.get(r[1]), "ts_recv": r[3], "strategy": r[4],
                               "side": r[5], "entry_price_ticks": r[7], "score": r[11], "decision": r[14],
                               "reason": r[15]} for r in rows])

    async def positions(self, request: web.Request) -> web.Response:
        d = self.daemon
        return json_response({"positions": d.positions(), "equity": d.live.equity, "drawdown": d.live.drawdown})

    async def runs(self, request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
        rows = await asyncio.to_thread(self.daemon.runs)
        return json_response(rows[-limit:])

    async def control_state(self, request: web.Request) -> web.Response:
        controls = self.daemon.controls
        state = controls.state()
        state["strategies"] = sorted(controls.strategies)
        state["strategy_params"] = controls.strategy_params()
        return json_response(state)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        return await stream.serve(self.daemon, request)

    async def dashboard(self, request: web.Request) -> web.Response:
        return web.Response(body=stream.asset("index.html"), content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = stream.asset(name)
        if body is None:
            raise ApiError(404, f"no asset {name!r}")
        kind = "application/javascript" if name.endswith(".js") else "text/css" if name.endswith(".css") else None
        if kind is None:
            raise ApiError(404, f"no asset {name!r}")
        return web.Response(body=body, content_type=kind)

    # --- controls ----------------------------------------------------------------------------------------
    def _authorize(self, request: web.Request) -> None:
        token = self.daemon.token
        given = request.headers.get("Authorization", "")
        if not token:
            raise ApiError(401, f"control is disabled: set the token in ${self.daemon.config.daemon.token_env}")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise ApiError(401, "missing or wrong bearer token")

    async def _body(self, request: web.Request) -> dict:
        raw = await request.read()
        if not raw:
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        return body

    async def pause(self, request: web.Request) -> web.Response:
        return await self._pause(request, True)

    async def resume(self, request: web.Request) -> web.Response:
        return await self._pause(request, False)

    async def _pause(self, request: web.Request, paused: bool) -> web.Response:
        self._authorize(request)
        name = request.match_info["name"]
        try:
            self.daemon.controls.pause(name, paused)
        except KeyError:
            known = ", ".join(sorted(self.daemon.controls.strategies))
            raise ApiError(404, f"unknown strategy {name!r}; running: {known}") from None
        self.daemon.control_changed("strategy_paused" if paused else "strategy_resumed", strategy=name)
        return json_response({"strategy": name, "paused": paused})

    async def flatten(self, request: web.Request) -> web.Response:
        self._authorize(request)
        orders = self.daemon.controls.flatten()
        self.daemon.control_changed("flattened", orders=len(orders))
        return json_response({"orders": orders})

    async def kill(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await self._body(request)
        reason = str(body.get("reason", "operator"))[:200]
        self.daemon.controls.engage(reason)
        self.daemon.control_changed("kill_switch_engaged", reason=reason)
        return json_response({"kill_switch": True, "reason": reason})

    async def reset_kill(self, request: web.Request) -> web.Response:
        self._authorize(request)
        self.daemon.controls.reset_kill_switch()
        self.daemon.control_changed("kill_switch_reset")
        return json_response({"kill_switch": False})

    async def risk(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await self._body(request)
        try:
            risk = self.daemon.controls.set_risk_limits(body)
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from None
        self.daemon.control_changed("risk_limits_changed", **body)
        return json_response({"risk": msgspec.to_builtins(risk)})
