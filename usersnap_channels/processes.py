"""What every worker process of the package needs, light enough for any of them to import.

Fetch workers and themes workers are spawned processes: they exit with the process that started them, and
they report their own peak memory. Nothing here imports pyarrow, DuckDB, NumPy or the HTTP client, so a
themes worker never loads the import's modules (~100 MB of resident memory per worker) and the other way round.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB.

    Linux: VmHWM, the high-water mark of this process's memory since it started. Not ru_maxrss: that one
    survives fork and exec, so a spawned worker would report at least its parent's RSS at spawn time (the
    Dagster process's, not the worker's)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)


def exit_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """Worker-process initializer: exit as soon as the process that started the pool is gone.

    A `sync` killed with SIGKILL cannot shut its pools down: its fetch workers would wait on the pool's queue
    forever (each holds the queue's write end, so they never see end-of-file), and a themes worker would go
    on computing for nobody.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
