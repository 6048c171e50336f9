"""``[daemon]``: the long-running ``chimera daemon`` (HTTP API, dashboard, metrics, checkpoints, retention)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from engine.config.ranges import MAX_SECONDS, Count, Seconds, Speed

Host = Annotated[str, Meta(pattern=r"^\S+$")]
EnvName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Port = Annotated[int, Meta(ge=0, le=65535)]
FrameInterval = Annotated[int, Meta(ge=50, le=10_000)]
HeatmapLevels = Annotated[int, Meta(ge=1, le=200)]


class DaemonConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: Host = "127.0.0.1"  # bind address; anything but loopback needs the token set
    port: Port = 8765  # 0 picks a free port (printed in the daemon_listening log line)
    token_env: EnvName = "CHIMERA_API_TOKEN"  # environment variable holding the control token
    speed: Speed = 1.0  # feed pace: a multiple of real time, or "max"
    session_s: Seconds = 23_400.0  # simulated seconds per session; a new session (a new run) follows
    stale_after_s: Seconds = 10.0  # /readyz fails when a lane or the writer has been idle this long (wall)
    checkpoint_s: Seconds = 5.0  # wall seconds between state checkpoints
    retention_s: Annotated[float, Meta(gt=0, le=MAX_SECONDS)] = 86_400.0  # samples older than this are pruned
    frame_interval_ms: FrameInterval = 250  # dashboard frame period per client
    heatmap_levels: HeatmapLevels = 30  # price levels per side in a dashboard frame and /api/book's maximum
    history: Count = 2000  # trades, detections and signals kept in memory per instrument for the API
    max_request_bytes: Count = 65_536  # larger request bodies are refused (413)
    rate_per_s: Count = 100  # requests per second per client address (token bucket)
    rate_burst: Count = 200  # bucket size
