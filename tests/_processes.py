"""Start method for the cache tests' writer processes.

A spawned process starts a fresh interpreter and imports the package (about
1.5 s: ``sklearn_llmconf`` imports scikit-learn), so four spawned writers
cost about four imports. A fork server imports it once and forks each writer
from that single-threaded process (no fork of the multi-threaded pytest
process); spawn where there is no fork server (Windows).
"""

import multiprocessing as mp

__all__ = ["writer_context"]

#: What the fork server imports before forking a writer.
PRELOAD = ["numpy", "pytest", "sklearn_llmconf.cache._sqlite",
           "sklearn_llmconf.cache._postgres"]


def writer_context():
    """A ``multiprocessing`` context for independent writer processes."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # Takes effect when this process starts its fork server (the first
    # Process.start()); a server already running keeps its own preload.
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
