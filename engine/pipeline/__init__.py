"""The async shell: the generic stage coroutine, the per-instrument lanes, the router, the canonical
merge and the wiring of one run (``Pipeline``), plus the synchronous reference path
(``run_reference``) that drives the very same cores without an event loop.
"""

from engine.pipeline.run import Pipeline, RunOptions, RunStats, run_reference

__all__ = ["Pipeline", "RunOptions", "RunStats", "run_reference"]
