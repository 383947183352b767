"""The main module of every themes worker: a spawned worker imports it first, before NumPy loads.

Why: OpenBLAS starts as many threads as cores for each matrix product, and its idle threads spin. The kNN
search already runs its blocks in two threads of its own, so OpenBLAS's threads only oversubscribed the
two cores: one OpenBLAS thread per caller used 40 % less CPU for the same search (measured 2.0 → 1.2 CPU
seconds on 10k vectors) and left the cores to the single-threaded Leiden that follows. A value the user
set in the environment is kept.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
