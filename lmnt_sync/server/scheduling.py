"""Synthesis worker threads that take the most urgent job first.

The engines are compute-bound, so under load jobs wait for a worker. A
first-come-first-served pool (``ThreadPoolExecutor``) makes a listener who
has just flushed wait behind every continuation queued by other sessions,
whose clients may still hold seconds of audio. :class:`UrgencyExecutor`
keeps its waiting jobs in a heap ordered by a priority key instead:

* ``(FIRST_AUDIO, t)``: the first audio of a turn, for a client that has
  nothing left to play; among these, the one submitted first (``t``).
* ``(CONTINUATION, t)``: more audio for a session whose client runs out of
  audio at monotonic time ``t``; the earliest ``t`` (the least audio
  buffered ahead of playback) goes first. Plain :meth:`submit` (REST,
  warm-up) uses the submission time, as a job due now.

Keys are absolute times, so the order of waiting jobs does not change while
they wait. Equal keys run in submission order.

Every job queued or running counts as demand for the cores in
:data:`~.engines.cores.CORES`, so a synthesis run that is the only job gets
every core and runs share them as jobs pile up.
"""
from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from concurrent.futures import Executor, Future
from typing import Any, Callable, Dict, List, Tuple

from .engines.cores import CORES

__all__ = ["UrgencyExecutor", "FIRST_AUDIO", "CONTINUATION", "Priority"]

FIRST_AUDIO = 0
CONTINUATION = 1

Priority = Tuple[int, float]


class UrgencyExecutor(Executor):
    """A fixed pool of worker threads serving jobs by priority key.

    Thread-safe. :meth:`shutdown` with ``wait=True`` lets the workers
    finish the jobs still queued (unless ``cancel_futures``) and joins them.

    The event loop submits a job per chunk, so the hand-off is kept short:
    a C-level lock held for one ``heappush``/``heappop`` guards the heap,
    and a ``SimpleQueue`` of tokens (one per job) wakes the workers. A
    ``threading.Condition`` runs Python code under its lock, and a worker
    losing the GIL inside it would stall the loop thread behind it.
    """

    def __init__(self, workers: int, thread_name_prefix: str = "lmnt-sync-synth") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._heap: List[Tuple[Priority, int, Future[Any], Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._shutdown = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}_{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` as a job due now."""
        return self.submit_at((CONTINUATION, time.monotonic()), fn, *args, **kwargs)

    def submit_at(self, priority: Priority, fn: Callable[..., Any], /, *args: Any,
                  **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` with ``priority`` (smaller runs first).

        Raises:
            RuntimeError: after :meth:`shutdown`.
        """
        future: Future[Any] = Future()
        entry = (priority, next(self._seq), future, fn, args, kwargs)
        CORES.add_demand(1)  # before the push: a worker may take the job at once
        with self._lock:
            if self._shutdown:
                CORES.add_demand(-1)
                raise RuntimeError("cannot schedule new futures after shutdown")
            heapq.heappush(self._heap, entry)
        self._tokens.put(None)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            first = not self._shutdown
            self._shutdown = True
            dropped, self._heap = (self._heap, []) if cancel_futures else ([], self._heap)
        CORES.add_demand(-len(dropped))
        for entry in dropped:
            entry[2].cancel()
        if first:
            for _ in self._threads:
                self._tokens.put(None)  # a token that finds the heap empty ends a worker
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _work(self) -> None:
        while True:
            self._tokens.get()
            with self._lock:
                entry = heapq.heappop(self._heap) if self._heap else None
            if entry is None:
                if self._shutdown:
                    return  # shut down and nothing left to run
                continue
            _, _, future, fn, args, kwargs = entry
            del entry
            if not future.set_running_or_notify_cancel():
                CORES.add_demand(-1)
                continue  # cancelled while it waited (its session is gone)
            try:
                with CORES.running_job():
                    result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the waiting side, as ThreadPoolExecutor does
                CORES.add_demand(-1)  # before the waiter wakes and submits its next step
                future.set_exception(exc)
            else:
                CORES.add_demand(-1)
                future.set_result(result)
            del future, fn, args, kwargs
