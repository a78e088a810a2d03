"""Intra-op threads per synthesis run (issue 17): every core for a run alone, one each under load.

The budget is checked on its own (grants, waiting instead of oversubscribing,
the executor's demand), and the engines and server functionally: which
session (or how many parts) a run actually used, that wide and one-thread
runs make the same audio, and that the audio says the text. Nothing here times anything.
"""
import threading

import numpy as np
import pytest
import requests

from conftest import wait_until
from lmnt_sync.server.engines import get_engine
from lmnt_sync.server.engines.cores import CORES, CoreBudget, _budget_from_env, widths_for
from lmnt_sync.server.scheduling import UrgencyExecutor
from server_kit import close, connect, current_init, decode, read, send
from speech_check import transcribe, word_error_rate

SENTENCE = "The quick brown fox jumps over the lazy dog."


def expected_threads(budget: CoreBudget, others: int) -> int:
    """What one run gets with ``others`` competing jobs and no core held."""
    share = max(1, budget.cores // (others + 1))
    return max(w for w in budget.widths if w <= share)


def claim_behind_a_wide_run(budget: CoreBudget, while_waiting=lambda got: None) -> list:
    """Hold every core of a 2-core ``budget`` while a second run claims; return what it got.

    ``while_waiting(got)`` runs once the second run is seen waiting, before the first ends.
    """
    wide = budget.claim()
    assert wide.__enter__() == 2
    got = []

    def second_run():
        with budget.claim() as threads:
            got.append(threads)

    waiter = threading.Thread(target=second_run)
    waiter.start()
    try:
        assert wait_until(lambda: budget.waiting == 1), "the second run should wait for a core"
        while_waiting(got)
    finally:
        wide.__exit__(None, None, None)
        waiter.join(10)
    return got


# -- the budget on its own ---------------------------------------------------


def test_widths_are_one_powers_of_two_and_every_core():
    assert widths_for(1) == (1,)
    assert widths_for(2) == (1, 2)
    assert widths_for(6) == (1, 2, 4, 6)
    assert widths_for(8) == (1, 2, 4, 8)
    with pytest.raises(ValueError, match="cores must be at least 1"):
        widths_for(0)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_run_alone_gets_every_core_and_runs_share_them_as_demand_grows():
    budget = CoreBudget(8, crowd_memory=0)
    with budget.claim() as threads:
        assert threads == 8
    for others, share in ((1, 4), (3, 2), (4, 1), (20, 1)):
        budget.add_demand(others)
        with budget.claim() as threads:
            assert threads == share, f"{others} other jobs"
        budget.add_demand(-others)
    assert budget.demand == 0
    two = CoreBudget(2, crowd_memory=0)
    two.add_demand(1)
    with two.claim() as threads:
        assert threads == 1, "on 2 cores a run with company gets one thread"
    with two.running_job():
        with two.claim() as threads:
            assert threads == 2, "the claimer's own job is not competition"
    two.add_demand(-1)


def test_a_run_is_alone_only_once_company_is_a_while_ago():
    """Under a steady few clients each job is often alone for a moment; taking every core then
    makes the next arrival wait a sentence. Company is remembered for ``crowd_memory`` s."""
    clock = Clock()
    budget = CoreBudget(2, crowd_memory=1.0, clock=clock)
    with budget.claim() as threads:
        assert threads == 2 and not budget.crowded
    budget.add_demand(2)  # two jobs in the server at once
    budget.add_demand(-2)
    assert budget.crowded
    with budget.claim() as threads:
        assert threads == 1, "alone now, but company a moment ago"
    clock.now += 0.9
    with budget.claim() as threads:
        assert threads == 1
    clock.now += 0.2
    assert not budget.crowded
    with budget.claim() as threads:
        assert threads == 2, "company long enough ago: every core again"
    # A run that had to wait for a wide one was not alone either.
    assert claim_behind_a_wide_run(budget) == [1] and budget.crowded
    with pytest.raises(ValueError, match="crowd_memory"):
        CoreBudget(2, crowd_memory=-1)


def test_max_threads_caps_one_run_not_the_runs_at_once():
    budget = CoreBudget(2, max_threads=1)
    assert budget.widths == (1,)
    with budget.claim() as first, budget.claim() as second:  # both at once, no waiting
        assert (first, second) == (1, 1)
    with pytest.raises(ValueError, match="max_threads"):
        CoreBudget(2, max_threads=0)


def test_a_run_that_finds_every_core_held_waits_instead_of_oversubscribing():
    budget = CoreBudget(2, crowd_memory=0)

    def while_waiting(got):
        assert got == [] and budget.peak == 2

    assert claim_behind_a_wide_run(budget, while_waiting) == [2], "alone again once the wide run ended"
    assert budget.peak == 2


def test_many_concurrent_runs_never_hold_more_threads_than_cores():
    budget = CoreBudget(2)
    held = [0]
    most = [0]
    lock = threading.Lock()

    def runs():
        budget.add_demand(1)
        with budget.running_job():
            for _ in range(200):
                with budget.claim() as threads:
                    with lock:
                        held[0] += threads
                        most[0] = max(most[0], held[0])
                    with lock:
                        held[0] -= threads
        budget.add_demand(-1)

    threads = [threading.Thread(target=runs) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert most[0] <= 2 and budget.peak <= 2
    assert sum(budget.grants.values()) == 6 * 200
    assert budget.demand == 0 and budget.waiting == 0


def test_thread_cap_from_the_environment(monkeypatch):
    monkeypatch.setenv("LMNT_SYNC_SYNTH_THREADS", "1")
    assert _budget_from_env().widths == (1,)
    for bad in ("lots", "0"):
        monkeypatch.setenv("LMNT_SYNC_SYNTH_THREADS", bad)
        with pytest.raises(ValueError, match=f"LMNT_SYNC_SYNTH_THREADS.*'{bad}'"):
            _budget_from_env()


def test_the_executor_counts_queued_and_running_jobs_as_demand():
    assert CORES.demand == 0, "no job of an earlier test is still counted"
    executor = UrgencyExecutor(1, thread_name_prefix="lmnt-sync-test-cores")
    gate = threading.Event()
    started = threading.Event()

    def claim_after_gate():
        started.set()
        assert gate.wait(10)
        with CORES.claim() as threads:
            return threads

    def claim():
        with CORES.claim() as threads:
            return threads

    try:
        first = executor.submit(claim_after_gate)
        assert started.wait(10)
        second = executor.submit(claim)  # queued behind the first: competition for it
        assert CORES.demand == 2
        gate.set()
        assert first.result(10) == expected_threads(CORES, 1)
        # The last job ran alone, right after company: it gets its share, not every core.
        assert second.result(10) == expected_threads(CORES, 1)
        assert wait_until(lambda: CORES.demand == 0)
        # Jobs dropped at shutdown stop counting too.
        gate.clear()
        started.clear()
        executor.submit(claim_after_gate)
        assert started.wait(10)
        dropped = [executor.submit(claim) for _ in range(3)]
        assert CORES.demand == 4
        executor.shutdown(wait=False, cancel_futures=True)
        assert all(f.cancelled() for f in dropped)
    finally:
        gate.set()
        executor.shutdown(wait=True)
    assert CORES.demand == 0


# -- the engines ---------------------------------------------------------------


def _threads_of(session) -> int:
    return session.get_session_options().intra_op_num_threads


def assert_same_audio(narrow: np.ndarray, wide: np.ndarray) -> None:
    """Same length and samples up to float rounding (threads sum in another order).

    Measured: 0.35% relative RMS difference for Hibari; another sentence or
    model is of the order of 100%.
    """
    assert len(narrow) == len(wide) > 8000
    difference = np.sqrt(np.mean((narrow - wide) ** 2)) / np.sqrt(np.mean(narrow ** 2))
    assert difference < 0.02, f"relative RMS difference {difference:.4f}"


def test_hibari_keeps_a_session_per_width_and_they_make_the_same_audio():
    from lmnt_sync.server.engines.hibari import HibariEngine

    budget = CoreBudget(2)  # two widths whatever this machine has
    engine = HibariEngine(budget=budget)
    engine.load()
    models = engine._models["heart"]
    assert {w: _threads_of(m.sess) for w, m in models.items()} == {1: 1, 2: 2}
    assert models[2].g2p is models[1].g2p, "the sessions share one G2P"
    ids = models[1].ids(models[1].phonemize(SENTENCE)[0])
    narrow = models[1].from_ids(ids, 1.0, np.random.default_rng(5))
    wide = models[2].from_ids(ids, 1.0, np.random.default_rng(5))
    assert_same_audio(narrow, wide)

    alone = list(engine.synthesize(SENTENCE, "heart"))
    assert engine.runs == {2: 1}, "a run alone used the two-thread session"
    budget.add_demand(1)  # another job waiting for the cores
    try:
        shared = list(engine.synthesize(SENTENCE, "heart"))
    finally:
        budget.add_demand(-1)
    assert engine.runs == {2: 1, 1: 1}, "with company it used the one-thread session"
    for chunks in (alone, shared):
        assert [w.text for c in chunks for w in c.words] == SENTENCE.split()
        pcm = b"".join(c.pcm for c in chunks)
        assert word_error_rate(SENTENCE, transcribe(pcm, engine.sample_rate)) <= 0.5


def test_piper_runs_a_sentence_in_as_many_parts_as_cores_and_they_make_the_same_audio():
    from piper import SynthesisConfig

    from lmnt_sync.server.engines.piper import PiperEngine

    budget = CoreBudget(2)
    engine = PiperEngine(budget=budget)
    engine.load()
    voices = engine._voices
    assert {w: v.session.parts for w, v in voices.items()} == {1: 1, 2: 2}
    staged = voices[1].session.model
    assert voices[2].session.model is staged, "the widths share one staged model"
    assert {_threads_of(s) for s in (staged.encoder, staged.flow, staged.decoder)} == {1}
    # Without noise the model is deterministic, so the parts must join into the same samples.
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    narrow = np.concatenate([c.audio_float_array for c in voices[1].synthesize(SENTENCE, quiet)])
    wide = np.concatenate([c.audio_float_array for c in voices[2].synthesize(SENTENCE, quiet)])
    assert_same_audio(narrow, wide)
    assert staged.splits == {1: 1, 2: 1}, "the wide voice cut this sentence in two"

    alone = list(engine.synthesize(SENTENCE, "joe"))
    budget.add_demand(1)
    try:
        shared = list(engine.synthesize(SENTENCE, "joe"))
    finally:
        budget.add_demand(-1)
    assert engine.runs == {2: 1, 1: 1}
    assert staged.splits == {1: 2, 2: 2}
    for chunks in (alone, shared):
        assert [w.text for c in chunks for w in c.words] == SENTENCE.split()
        pcm = b"".join(c.pcm for c in chunks)
        assert word_error_rate(SENTENCE, transcribe(pcm, engine.sample_rate)) <= 0.5


# -- through the server (the process-wide budget) -------------------------------


def _rest_wav(server) -> bytes:
    reply = requests.post(f"{server.url}/v1/ai/speech/bytes", timeout=60,
                          headers={"X-API-Key": server.api_key},
                          json={"text": SENTENCE, "voice": "lily", "format": "wav"})
    assert reply.status_code == 200, reply.text
    return reply.content


def _check_speech(data: bytes, fmt: str) -> None:
    rate, seconds, pcm = decode(data, fmt, 24000)
    assert seconds > 1.0
    assert word_error_rate(SENTENCE, transcribe(pcm, rate)) <= 0.5


def _added_runs(engine, before):
    """Sentences run per session width since ``before`` (a copy of ``engine.runs``)."""
    return {w: n - before.get(w, 0) for w, n in engine.runs.items() if n != before.get(w, 0)}


def test_server_gives_an_idle_request_every_core_and_shares_under_load(speaking_server):
    engine = get_engine("hibari")  # the speaking server's default engine
    every = CORES.widths[-1]
    _rest_wav(speaking_server)  # loaded and warm
    # Alone means no company for CORES.crowd_memory seconds (earlier tests' jobs included).
    assert wait_until(lambda: not CORES.crowded, timeout=30)
    before = dict(engine.runs)
    _check_speech(_rest_wav(speaking_server), "wav")
    assert _added_runs(engine, before) == {every: 1}, "the REST request ran alone with every core"

    # The segments of a streaming turn (its first one too), alone, get them as well.
    assert wait_until(lambda: not CORES.crowded, timeout=30)
    before = dict(engine.runs)
    ws = connect(speaking_server, current_init(speaking_server, return_timestamps=False))
    try:
        send(ws, {"type": "text", "text": SENTENCE}, {"type": "flush"})
        heard = read(ws, until="flush_complete")
    finally:
        close(ws)
    _check_speech(heard.audio, "pcm_s16le")
    assert list(_added_runs(engine, before)) == [every]

    share = expected_threads(CORES, 1)
    before = dict(engine.runs)
    CORES.add_demand(1)  # as if another job were queued in the server
    try:
        _check_speech(_rest_wav(speaking_server), "wav")
    finally:
        CORES.add_demand(-1)
    assert _added_runs(engine, before) == {share: 1}, "under load it used its share"
    assert CORES.peak <= CORES.cores
