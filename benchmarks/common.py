"""Shared helpers of the benchmark scripts: timing, peak memory, the machine's description."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import orjson


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Smallest wall time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS and Python of the machine running the benchmarks."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages * page_size / 2**30:.0f} GiB"
    except (ValueError, OSError):
        memory = "unknown"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def run_isolated(module: str, *args: str) -> list[dict]:
    """Run ``python -m module --json`` in a fresh process (clean peak-RSS figures); parse its last line."""
    result = subprocess.run([sys.executable, "-m", module, "--json", *args], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{module} failed: {result.stderr.strip()[-2000:]}")
    return orjson.loads(result.stdout.strip().splitlines()[-1])


def result(name: str, value: float, unit: str, target: float | None, higher_is_better: bool = True,
           note: str = "") -> dict:
    value = value.item() if hasattr(value, "item") else value  # numpy scalars: orjson refuses them
    met = None if target is None else (value >= target if higher_is_better else value <= target)
    return {"name": name, "value": value, "unit": unit, "target": target, "met": met,
            "higher_is_better": higher_is_better, "note": note}


def emit(results: list[dict]) -> None:
    """Print results as one JSON line (the runner reads it)."""
    sys.stdout.write(orjson.dumps(results).decode() + "\n")


def main(run: Callable[[], list[dict]]) -> None:
    """Entry point of one benchmark script: ``--json`` prints the runner's line, else readable rows."""
    out = run()
    if "--json" in sys.argv:
        emit(out)
    else:
        for row in out:
            print(f"{row['name']}: {row['value']:,} {row['unit']} (target {row['target']}) {row['note']}")
