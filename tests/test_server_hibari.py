"""Hibari adapter: one noise generator per worker thread, voice ids read once."""
import threading

import numpy as np
import pytest

pytest.importorskip("hibari")

from lmnt_sync.server.engines.hibari import HibariEngine  # noqa: E402


def test_each_thread_keeps_one_generator():
    engine = HibariEngine()
    mine = engine._rng()
    assert isinstance(mine, np.random.Generator)
    assert engine._rng() is mine, "the same thread reuses its generator"
    other = []
    thread = threading.Thread(target=lambda: other.extend((engine._rng(), engine._rng())))
    thread.start()
    thread.join()
    assert other[0] is other[1] and other[0] is not mine


def test_unknown_voice_is_refused_before_any_model_loads():
    engine = HibariEngine()
    with pytest.raises(KeyError, match="heart"):
        next(engine.synthesize("Hello.", "no-such-voice"))
    assert engine._models == {}
    assert "heart" in engine._voice_ids
