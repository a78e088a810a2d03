"""Urgency-ordered synthesis: which waiting job a worker takes next.

Ordering only, never times: jobs are held back with events and the order in
which they ran is recorded.
"""
import threading
import time

import pytest

from lmnt_sync.server import LocalServer, local
from lmnt_sync.server.engines.synthetic import SyntheticEngine
from lmnt_sync.server.scheduling import CONTINUATION, FIRST_AUDIO, UrgencyExecutor
from server_kit import close, connect, current_init, read, send


def _until(condition, what: str, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.002)


def _blocked_executor(workers: int = 1):
    """An executor whose workers are all busy until the returned event is set."""
    executor = UrgencyExecutor(workers)
    release, started = threading.Event(), threading.Semaphore(0)

    def hold():
        started.release()
        release.wait(10)

    for _ in range(workers):
        executor.submit(hold)
    for _ in range(workers):
        assert started.acquire(timeout=10)
    return executor, release


def test_jobs_run_by_priority_key_then_in_submission_order():
    executor, release = _blocked_executor()
    ran = []
    futures = [
        executor.submit_at((CONTINUATION, 50.0), ran.append, "continuation, dry at 50"),
        executor.submit_at((CONTINUATION, 20.0), ran.append, "continuation, dry at 20"),
        executor.submit_at((FIRST_AUDIO, 99.0), ran.append, "first audio, submitted at 99"),
        executor.submit_at((FIRST_AUDIO, 99.0), ran.append, "first audio, submitted at 99, later"),
        executor.submit_at((FIRST_AUDIO, 98.0), ran.append, "first audio, submitted at 98"),
    ]
    release.set()
    for f in futures:
        f.result(10)
    executor.shutdown()
    assert ran == [
        "first audio, submitted at 98",
        "first audio, submitted at 99",
        "first audio, submitted at 99, later",
        "continuation, dry at 20",
        "continuation, dry at 50",
    ]


def test_shutdown_cancels_waiting_jobs_and_refuses_new_ones():
    executor, release = _blocked_executor()
    waiting = executor.submit(print, "never")
    executor.shutdown(wait=False, cancel_futures=True)
    release.set()
    executor.shutdown()
    assert waiting.cancelled()
    with pytest.raises(RuntimeError):
        executor.submit(print, "after shutdown")


def test_shutdown_without_cancel_runs_what_is_queued_and_errors_reach_the_caller():
    executor, release = _blocked_executor(2)
    done = executor.submit(lambda: "ran")
    failed = executor.submit(lambda: 1 / 0)
    release.set()
    executor.shutdown(wait=True)
    assert done.result() == "ran"
    with pytest.raises(ZeroDivisionError):
        failed.result()


class _GateEngine(SyntheticEngine):
    """Synthetic speech, one chunk per word; records each word as a worker
    makes it and holds words that have a gate until the gate opens."""

    def __init__(self):
        self.order = []
        self.gates = {}

    def synthesize(self, text, voice):
        for word in text.split():
            chunk = next(iter(super().synthesize(word, voice)))
            self.order.append(word)
            gate = self.gates.get(word)
            if gate is not None:
                gate.wait(10)
            yield chunk


def test_a_first_segment_goes_before_a_continuation_queued_earlier(monkeypatch):
    """One worker, two talking sessions: B's first audio overtakes A's next sentence.

    A speaks "alpha apple" (one segment); a third session H holds the only worker
    while A's continuation (apple) and then B's first segment (bravo) are queued;
    when H lets go, bravo runs before apple. (No digits in the words: the
    server would normalise "a1" to "a one".)
    """
    monkeypatch.setattr(local, "worker_count", lambda: 1)
    engine = _GateEngine()
    engine.gates = {"alpha": threading.Event(), "hold": threading.Event()}
    with LocalServer(engine=engine) as server:
        executor = server._executor
        sessions = [connect(server, current_init(server, voice="synth", return_timestamps=None))
                    for _ in range(3)]
        a, h, b = sessions
        try:
            for ws in sessions:
                read(ws, until="ready")
            send(a, {"type": "text", "text": "alpha apple"}, {"type": "flush"})
            _until(lambda: engine.order == ["alpha"], "A's first sentence to start")
            send(h, {"type": "text", "text": "hold"}, {"type": "flush"})
            _until(lambda: len(executor._heap) == 1, "H's job to queue")
            engine.gates["alpha"].set()
            _until(lambda: engine.order == ["alpha", "hold"], "H to take the worker")
            _until(lambda: len(executor._heap) == 1, "A's continuation to queue")
            send(b, {"type": "text", "text": "bravo"}, {"type": "flush"})
            _until(lambda: len(executor._heap) == 2, "B's first segment to queue")
            engine.gates["hold"].set()
            for ws in sessions:
                read(ws, until="flush_complete")
        finally:
            for gate in engine.gates.values():
                gate.set()
            for ws in sessions:
                close(ws)
    assert engine.order == ["alpha", "hold", "bravo", "apple"]


@pytest.mark.parametrize("fmt, worker_drains", [("pcm_s16le", False), ("ulaw", False), ("mp3", True)])
def test_drains_without_work_run_inline(fmt, worker_drains):
    """pcm/ulaw at the engine's rate (24 kHz) drain and finish on the loop; codecs in a worker."""
    with LocalServer(engine="synthetic") as server:
        executor = server._executor
        names = []
        submit_at = executor.submit_at

        def recording(priority, fn, *args, **kwargs):
            names.append(getattr(fn, "__name__", ""))
            return submit_at(priority, fn, *args, **kwargs)

        executor.submit_at = recording
        init = current_init(server, voice="synth", format=fmt, sample_rate=24000)
        ws = connect(server, init)
        try:
            send(ws, {"type": "text", "text": "Two words."}, {"type": "flush"}, {"type": "finish"})
            turn = read(ws)
        finally:
            close(ws)
    assert turn.close_code == 1000 and any(kind == "audio" for kind, _ in turn.events)
    assert "next_encoded" in names
    assert ("drain" in names and "finish" in names) is worker_drains
