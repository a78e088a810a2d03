"""How many onnxruntime intra-op threads one synthesis run may use.

A model run with one intra-op thread leaves the other cores idle when it is
the only work in the process: the listener of a notebook or a script waits
for one core while the rest sit unused. Many threads per run under load are
worse than one: the runs' thread pools oversubscribe the cores and spin
against each other and the event loop. :class:`CoreBudget` decides per run:

* a run that is the only demand for the cores gets all of them (Hibari
  keeps a session with that many intra-op threads beside its one-thread
  session; Piper cuts the sentence into that many parts that run at once,
  see ``piper_stages.py``);
* with others running or waiting, each run gets its fair share (the cores
  divided among the contenders, rounded down to one of :attr:`widths`),
  which on 2 cores is one thread;
* the threads held by runs in progress never exceed the cores: a run that
  finds every core taken (by a run that started alone) waits for it to end,
  which is at most one sentence;
* a run is only "alone" if the server has not been crowded (two jobs at
  once) within the last :attr:`CoreBudget.crowd_memory` seconds. Under a
  steady load of a few clients each job often finds itself alone for a
  moment (the others are between requests) and would take every core, and
  the job arriving next waits a whole sentence for them: measured at 4
  clients, that cost ~20% of the throughput one thread per run gives.

"Demand" is the number of jobs queued or running in the server's synthesis
executor (:class:`~lmnt_sync.server.scheduling.UrgencyExecutor` reports it
with :meth:`CoreBudget.add_demand` and :meth:`CoreBudget.running_job`), plus
runs claimed outside it (an engine used on its own).

The process-wide budget is :data:`CORES`: every engine and every server in a
process share the same cores. ``LMNT_SYNC_SYNTH_THREADS`` (read once, at
import) caps the threads of one run; ``1`` restores one thread per run.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional, Tuple

__all__ = ["CoreBudget", "CORES", "CROWD_MEMORY", "cpu_cores", "widths_for", "session_options"]

#: Seconds after two jobs were last in the server at once during which no run counts as alone.
CROWD_MEMORY = 1.0


def cpu_cores() -> int:
    """Return the cores this process may run on (its CPU affinity, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def widths_for(cores: int) -> Tuple[int, ...]:
    """Thread counts an engine keeps sessions for: 1, powers of two below ``cores``, ``cores``.

    Raises:
        ValueError: ``cores`` is below 1.
    """
    if cores < 1:
        raise ValueError(f"cores must be at least 1, not {cores!r}")
    widths = []
    width = 1
    while width < cores:
        widths.append(width)
        width *= 2
    widths.append(cores)
    return tuple(widths)


class CoreBudget:
    """Hands out intra-op thread counts so that runs never oversubscribe ``cores``.

    ``max_threads`` caps the threads of one run (not the runs at once).
    ``crowd_memory``: seconds a moment of company is remembered (see the
    module docstring); ``clock``: where time comes from (tests pass their
    own). Thread-safe. :meth:`claim` is the only call that blocks.
    """

    def __init__(
        self,
        cores: int,
        max_threads: Optional[int] = None,
        *,
        crowd_memory: float = CROWD_MEMORY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_threads is not None and max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads!r}")
        if crowd_memory < 0:
            raise ValueError(f"crowd_memory must be 0 or more seconds, not {crowd_memory!r}")
        self.crowd_memory = crowd_memory
        self._clock = clock
        self._crowded_at = float("-inf")  # when two jobs were last in the server at once
        # raises for cores < 1
        self.widths = widths_for(min(cores, max_threads or cores))
        self.cores = cores
        self._cond = threading.Condition(threading.Lock())
        self._held = 0  # threads held by runs in progress
        self._holders = 0  # runs in progress
        self._waiting = 0  # runs waiting for a core
        # Executor jobs queued or running, one item each: the event loop
        # counts its submissions here, and list append/pop are atomic, so it
        # never waits for the lock a worker holds while it claims.
        self._demand: List[None] = []
        self._local = threading.local()  # .jobs: counted executor jobs this thread is running
        self.peak = 0  # most threads ever held at once (never above cores)
        self.grants: Counter[int] = Counter()  # thread count -> runs granted it

    @property
    def waiting(self) -> int:
        """Runs currently blocked in :meth:`claim`."""
        return self._waiting

    @property
    def crowded(self) -> bool:
        """True while a moment of company is remembered: no run counts as alone."""
        return self._clock() - self._crowded_at < self.crowd_memory

    @property
    def demand(self) -> int:
        """Jobs counted by :meth:`add_demand`, queued or running."""
        return len(self._demand)

    def add_demand(self, jobs: int) -> None:
        """Count ``jobs`` more (or, negative, fewer) jobs queued or running elsewhere.

        Never blocks.
        """
        for _ in range(jobs):
            self._demand.append(None)
        for _ in range(-jobs):
            self._demand.pop()
        if len(self._demand) > 1:
            self._crowded_at = self._clock()  # a float store: atomic, no lock needed

    @contextmanager
    def running_job(self) -> Iterator[None]:
        """Mark the calling thread as running one of the jobs counted by :meth:`add_demand`.

        Its own claims then do not count that job as competing demand.
        """
        self._local.jobs = getattr(self._local, "jobs", 0) + 1
        try:
            yield
        finally:
            self._local.jobs -= 1

    @contextmanager
    def claim(self) -> Iterator[int]:
        """Hold cores for one model run; yields how many intra-op threads it may use.

        The count is one of :attr:`widths`. Blocks while every core is held
        by other runs.
        """
        threads = self._acquire()
        try:
            yield threads
        finally:
            with self._cond:
                self._held -= threads
                self._holders -= 1
                self._cond.notify_all()

    def _acquire(self) -> int:
        with self._cond:
            self._waiting += 1
            try:
                while self._held >= self.cores:
                    self._crowded_at = self._clock()  # it had to wait: company
                    self._cond.wait()
            finally:
                self._waiting -= 1
            others = len(self._demand) - getattr(self._local, "jobs", 0)
            contenders = 1 + max(others, self._holders + self._waiting)
            now = self._clock()
            if contenders > 1:
                self._crowded_at = now
            elif now - self._crowded_at < self.crowd_memory:
                contenders = 2  # company a moment ago: likely again in a moment
            share = min(self.cores - self._held, self.cores // contenders)
            threads = max(w for w in self.widths if w <= max(share, 1))
            self._held += threads
            self._holders += 1
            self.peak = max(self.peak, self._held)
            self.grants[threads] += 1
            return threads


def _budget_from_env() -> CoreBudget:
    cap = os.environ.get("LMNT_SYNC_SYNTH_THREADS", "").strip()
    try:
        max_threads = int(cap) if cap else None
        return CoreBudget(cpu_cores(), max_threads)
    except ValueError:
        raise ValueError(
            f"LMNT_SYNC_SYNTH_THREADS must be a whole number of threads, 1 or more, not {cap!r}"
        ) from None


#: The process-wide budget every engine claims from.
CORES = _budget_from_env()


def session_options(threads: int) -> Any:  # an onnxruntime.SessionOptions (untyped library)
    """Return onnxruntime ``SessionOptions`` for runs with ``threads`` intra-op threads.

    Raises:
        ImportError: onnxruntime is missing.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # The default, said out loud: the blocked-layout 2-D convolutions that
    # conv1d_rewrite.py relies on are a layout optimization of this level.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if threads > 1:
        # Idle pool threads that spin after a run would burn the cores the
        # next runs (one thread each, under load) have just been given.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
