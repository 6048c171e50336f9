"""The local process pool: results in call order, many more calls than a worker's recycling limit in one
map and across maps without hanging, and a fresh pool of processes once the limit is passed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# Run in a child process with a time limit: the failure this guards against is a pool that hangs for ever
# (a worker leaving at ProcessPoolExecutor's max_tasks_per_child with calls queued, CPython gh-115634).
SCRIPT = textwrap.dedent("""
    import os
    from ml.executors import PoolExecutor

    def square(x):
        return x * x, os.getpid()

    if __name__ == "__main__":
        pool = PoolExecutor(1, recycle_after=2)
        try:
            first = pool.map(square, [(i,) for i in range(7)])  # 7 calls on one worker, limit 2: one map
            second = pool.map(square, [(i,) for i in range(3)])  # the limit was passed: a fresh pool
            third = pool.map(square, [(i,) for i in range(2)])  # 3 calls since the last fresh pool: fresh again
        finally:
            pool.close()
        assert [r for r, _ in first] == [i * i for i in range(7)]
        assert [r for r, _ in second] == [0, 1, 4] and [r for r, _ in third] == [0, 1]
        pids = [{p for _, p in batch} for batch in (first, second, third)]
        assert all(len(p) == 1 for p in pids) and len(set.union(*pids)) == 3, pids
        print("ok")
""")


def test_a_pool_runs_past_its_recycling_limit_and_replaces_its_worker_between_maps(tmp_path):
    script = tmp_path / "pool_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
