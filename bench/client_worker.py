"""One client under test, driven over stdin/stdout by ``bench/run.py``.

    python bench/client_worker.py CLIENT URL API_KEY SIZES_JSON [BLASTER_URL]

CLIENT is ``lmnt_sync`` (this project), ``sdk`` (the official async SDK,
lmnt 2.x) or ``floor`` (websocket-client used directly, no thread: the
least any blocking client can cost). Each line on stdin is a JSON command
``{"op": ..., ...}``; each answer is one JSON line on stdout. The worker
lives for the whole run, so its imports and warm-up are not timed and
the parent can interleave the clients (A/B/C, B/C/A, ...).

Every figure is taken in the caller's hands: for lmnt_sync after
``recv()`` returned the message; for the SDK after ``__anext__`` returned
the typed message; for the floor after ``recv_data()`` returned.
Clocks: ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, the server's clock
too); CPU: ``time.process_time()`` (all threads of this process).

Operations:
    memory(n): RSS growth per session with ``n`` sessions open (ready).
    open_first(n, preconnect=False): new session -> send text + flush -> first
        audio frame, ms. ``preconnect``: lmnt_sync with
        ``Speech(preconnect=True)``, each session taking the connection opened
        in advance (waited for, untimed, in the pause between sessions); the
        other clients have no such option and open cold.
    flush_first(n): on one open session, text + flush -> first audio frame, ms.
    handoff(frames): frames spaced by the server; each frame's latency from
        the server's send to the caller, us; CPU time of this process.
    throughput(words): one long stream of large frames: bytes / wall time
        from sending the text to the last frame; CPU time. With
        ``"blaster": true`` in the command, from ``blaster.py`` instead of
        the local server: the client's own receive capacity.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
# BENCH_LMNT_SYNC_TREE: import lmnt_sync from another checkout (``run.py --compare``).
sys.path.insert(0, os.environ.get("BENCH_LMNT_SYNC_TREE") or os.path.dirname(HERE))
sys.path.insert(0, HERE)

from stamp_engine import check_chunk, send_stamp  # noqa: E402

__all__ = ["LmntSyncClient", "SdkClient", "FloorClient", "main"]

FORMAT = {"format": "pcm_s16le", "sample_rate": 24000}
SHORT = "Hello there, how are you today?"
# Untimed pause after closing a session: each client's close() returns at a different point of
# the server's teardown (the SDK waits for the TCP close), so let the server settle before the
# next session is timed.
SETTLE = 0.02
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def measure_memory(n: int, open_session, wait_ready, close) -> Dict[str, Any]:
    """Open ``n`` sessions, wait until each is ready; return RSS and threads added per session."""
    gc.collect()
    before, threads = rss_bytes(), threading.active_count()
    sessions = [open_session() for _ in range(n)]
    for session in sessions:
        wait_ready(session)
    gc.collect()
    after, threads_after = rss_bytes(), threading.active_count()
    for session in sessions:
        close(session)
    return {"rss_per_session": (after - before) / n, "threads_per_session": (threads_after - threads) / n}


def wait_for(predicate, timeout: float = 10.0) -> None:
    """Poll ``predicate`` (untimed set-up between measurements)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise RuntimeError("timed out waiting in set-up")
        time.sleep(0.001)


def words(n: int) -> str:
    """``n`` distinct words of letters only: the server reads digits aloud ("w12" -> "w one two"),
    which would change the number of words, and so of chunks, the engine is given."""
    return " ".join("w" + _letters(i) for i in range(n))


def _letters(i: int) -> str:
    out = ""
    while True:
        i, digit = divmod(i, 26)
        out = "abcdefghijklmnopqrstuvwxyz"[digit] + out
        if not i:
            return out


def _ms(t0: int, t1: int) -> float:
    return (t1 - t0) / 1e6


class LmntSyncClient:
    """This project's blocking client."""

    def __init__(self, url: str, key: str, sizes: Dict[str, Any]) -> None:
        from lmnt_sync import Speech

        self.speech = Speech(api_key=key, base_url=url)
        self.url, self.key, self.warm = url, key, None
        self.sizes = sizes

    def _open(self, voice: str):
        return self.speech.synthesize_streaming(voice, **FORMAT)

    def _warm_speech(self):
        """A Speech with preconnect=True; None if this lmnt_sync (a --compare tree) predates it."""
        if self.warm is None:
            from lmnt_sync import Speech

            try:
                self.warm = Speech(api_key=self.key, base_url=self.url, preconnect=True)
            except TypeError:
                return None
        return self.warm

    @staticmethod
    def _first_audio(conn) -> bytes:
        while True:
            audio = conn.recv(10)["audio"]
            if audio:
                return audio

    def memory(self, n: int) -> Dict[str, Any]:
        return measure_memory(n, lambda: self._open("instant"), lambda conn: conn.wait_ready(),
                              lambda conn: conn.close())

    def open_first(self, n: int, preconnect: bool = False) -> List[float]:
        speech = self._warm_speech() if preconnect else None
        preconnect = speech is not None
        speech = speech or self.speech
        out = []
        for _ in range(n):
            if preconnect:
                wait_for(lambda: speech._spare._spare is not None)
            t0 = time.perf_counter_ns()
            conn = speech.synthesize_streaming("instant", **FORMAT)
            conn.append_text(SHORT)
            conn.flush()
            audio = self._first_audio(conn)
            t1 = time.perf_counter_ns()
            assert check_chunk(audio, self.sizes["instant_bytes"])
            conn.close()
            time.sleep(SETTLE)
            out.append(_ms(t0, t1))
        return out

    def flush_first(self, n: int) -> List[float]:
        out = []
        with self._open("instant") as conn:
            conn.wait_ready()
            for _ in range(n):
                t0 = time.perf_counter_ns()
                conn.append_text(SHORT)
                conn.flush()
                self._first_audio(conn)
                t1 = time.perf_counter_ns()
                out.append(_ms(t0, t1))
                time.sleep(0.005)  # untimed: let the flush_complete arrive
        return out

    def handoff(self, frames: int) -> Dict[str, Any]:
        lat: List[float] = []
        size, ok = self.sizes["paced_bytes"], True
        with self._open("paced") as conn:
            conn.wait_ready()
            cpu0 = time.process_time()
            conn.append_text(words(frames))
            conn.flush()
            while len(lat) < frames:
                audio = conn.recv(10)["audio"]
                now = time.perf_counter_ns()
                if audio:
                    lat.append((now - send_stamp(audio)) / 1e3)
                    ok = ok and len(audio) == size
            cpu = time.process_time() - cpu0
        return {"lat_us": lat, "cpu_s": cpu, "audio_s": frames * size / 48000, "ok": ok}

    def throughput(self, n_words: int) -> Dict[str, Any]:
        total = 0
        with self._open("burst") as conn:
            conn.wait_ready()
            cpu0, t0 = time.process_time(), time.perf_counter_ns()
            conn.append_text(words(n_words))
            conn.finish()
            for message in conn:
                total += len(message["audio"])
            t1, cpu = time.perf_counter_ns(), time.process_time() - cpu0
        return _throughput(total, t0, t1, cpu, n_words * self.sizes["burst_bytes"])


class SdkClient:
    """The official async SDK (lmnt 2.x), driven on one event loop."""

    def __init__(self, url: str, key: str, sizes: Dict[str, Any]) -> None:
        from lmnt import AsyncLmnt

        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.client = AsyncLmnt(api_key=key, base_url=url)
        self.sizes = sizes

    async def _open(self, voice: str):
        return await self.client.speech.sessions.create(voice=voice, **FORMAT)

    @staticmethod
    async def _next(session, kind: str):
        while True:
            message = await session.__anext__()
            if message.type == kind:
                return message

    def memory(self, n: int) -> Dict[str, Any]:
        return self.loop.run_until_complete(self._memory(n))

    async def _memory(self, n: int) -> Dict[str, Any]:
        gc.collect()
        before, threads = rss_bytes(), threading.active_count()
        sessions = [await self._open("instant") for _ in range(n)]
        for session in sessions:
            await self._next(session, "ready")
        gc.collect()
        after, threads_after = rss_bytes(), threading.active_count()
        for session in sessions:
            await session.close()
        return {"rss_per_session": (after - before) / n, "threads_per_session": (threads_after - threads) / n}

    def open_first(self, n: int, preconnect: bool = False) -> List[float]:
        return self.loop.run_until_complete(self._open_first(n))

    async def _open_first(self, n: int) -> List[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            session = await self._open("instant")
            await session.send_text(SHORT)
            await session.send_flush()
            message = await self._next(session, "audio")
            t1 = time.perf_counter_ns()
            assert check_chunk(message.audio, self.sizes["instant_bytes"])
            await session.close()
            await asyncio.sleep(SETTLE)
            out.append(_ms(t0, t1))
        return out

    def flush_first(self, n: int) -> List[float]:
        return self.loop.run_until_complete(self._flush_first(n))

    async def _flush_first(self, n: int) -> List[float]:
        out = []
        session = await self._open("instant")
        await self._next(session, "ready")
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await session.send_text(SHORT)
            await session.send_flush()
            await self._next(session, "audio")
            t1 = time.perf_counter_ns()
            out.append(_ms(t0, t1))
            await self._next(session, "flush_complete")  # untimed
            await asyncio.sleep(0.005)
        await session.close()
        return out

    def handoff(self, frames: int) -> Dict[str, Any]:
        return self.loop.run_until_complete(self._handoff(frames))

    async def _handoff(self, frames: int) -> Dict[str, Any]:
        lat: List[float] = []
        size, ok = self.sizes["paced_bytes"], True
        session = await self._open("paced")
        await self._next(session, "ready")
        cpu0 = time.process_time()
        await session.send_text(words(frames))
        await session.send_flush()
        while len(lat) < frames:
            message = await session.__anext__()
            now = time.perf_counter_ns()
            if message.type == "audio":
                lat.append((now - send_stamp(message.audio)) / 1e3)
                ok = ok and len(message.audio) == size
        cpu = time.process_time() - cpu0
        await session.close()
        return {"lat_us": lat, "cpu_s": cpu, "audio_s": frames * size / 48000, "ok": ok}

    def throughput(self, n_words: int) -> Dict[str, Any]:
        return self.loop.run_until_complete(self._throughput(n_words))

    async def _throughput(self, n_words: int) -> Dict[str, Any]:
        total = 0
        session = await self._open("burst")
        await self._next(session, "ready")
        cpu0, t0 = time.process_time(), time.perf_counter_ns()
        await session.send_text(words(n_words))
        await session.send_finish()
        async for message in session:
            if message.type == "audio":
                total += len(message.audio)
        t1, cpu = time.perf_counter_ns(), time.process_time() - cpu0
        await session.close()
        return _throughput(total, t0, t1, cpu, n_words * self.sizes["burst_bytes"])


class FloorClient:
    """websocket-client used directly in the caller's thread: the floor."""

    def __init__(self, url: str, key: str, sizes: Dict[str, Any]) -> None:
        import websocket

        from lmnt_sync.transport import websocket_url

        self.websocket = websocket
        self.url = websocket_url(url)
        self.key = key
        self.sizes = sizes
        self.nonce = 0

    def _open(self, voice: str):
        ws = self.websocket.create_connection(self.url)
        ws.send(json.dumps({"X-API-Key": self.key, "lmnt-version": "1.2", "voice": voice, **FORMAT}))
        return ws

    def _next(self, ws, kind: str) -> Any:
        """Return the next binary frame ("audio") or the next text frame of type ``kind``."""
        abnf = self.websocket.ABNF
        while True:
            opcode, data = ws.recv_data()
            if opcode == abnf.OPCODE_BINARY:
                if kind == "audio":
                    return data
            elif opcode == abnf.OPCODE_TEXT:
                if json.loads(data)["type"] == kind:
                    return data
            elif opcode == abnf.OPCODE_CLOSE:
                return None

    def _send(self, ws, message: Dict[str, Any]) -> None:
        ws.send(json.dumps(message))

    def _flush(self, ws) -> None:
        self.nonce += 1
        self._send(ws, {"type": "flush", "nonce": self.nonce})

    def memory(self, n: int) -> Dict[str, Any]:
        return measure_memory(n, lambda: self._open("instant"), lambda ws: self._next(ws, "ready"),
                              lambda ws: ws.close())

    def open_first(self, n: int, preconnect: bool = False) -> List[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            ws = self._open("instant")
            self._send(ws, {"type": "text", "text": SHORT})
            self._flush(ws)
            audio = self._next(ws, "audio")
            t1 = time.perf_counter_ns()
            assert check_chunk(audio, self.sizes["instant_bytes"])
            ws.close()
            time.sleep(SETTLE)
            out.append(_ms(t0, t1))
        return out

    def flush_first(self, n: int) -> List[float]:
        out = []
        ws = self._open("instant")
        self._next(ws, "ready")
        for _ in range(n):
            t0 = time.perf_counter_ns()
            self._send(ws, {"type": "text", "text": SHORT})
            self._flush(ws)
            self._next(ws, "audio")
            t1 = time.perf_counter_ns()
            out.append(_ms(t0, t1))
            self._next(ws, "flush_complete")  # untimed
            time.sleep(0.005)
        ws.close()
        return out

    def handoff(self, frames: int) -> Dict[str, Any]:
        lat: List[float] = []
        size, ok = self.sizes["paced_bytes"], True
        ws = self._open("paced")
        self._next(ws, "ready")
        binary = self.websocket.ABNF.OPCODE_BINARY
        cpu0 = time.process_time()
        self._send(ws, {"type": "text", "text": words(frames)})
        self._flush(ws)
        while len(lat) < frames:
            opcode, data = ws.recv_data()
            now = time.perf_counter_ns()
            if opcode == binary:
                lat.append((now - send_stamp(data)) / 1e3)
                ok = ok and len(data) == size
        cpu = time.process_time() - cpu0
        ws.close()
        return {"lat_us": lat, "cpu_s": cpu, "audio_s": frames * size / 48000, "ok": ok}

    def throughput(self, n_words: int) -> Dict[str, Any]:
        total = 0
        ws = self._open("burst")
        self._next(ws, "ready")
        abnf = self.websocket.ABNF
        cpu0, t0 = time.process_time(), time.perf_counter_ns()
        self._send(ws, {"type": "text", "text": words(n_words)})
        self._send(ws, {"type": "finish"})
        while True:
            opcode, data = ws.recv_data()
            if opcode == abnf.OPCODE_BINARY:
                total += len(data)
            elif opcode == abnf.OPCODE_CLOSE:
                break
        t1, cpu = time.perf_counter_ns(), time.process_time() - cpu0
        ws.close()
        return _throughput(total, t0, t1, cpu, n_words * self.sizes["burst_bytes"])


def _throughput(total: int, t0: int, t1: int, cpu: float, expected: int) -> Dict[str, Any]:
    seconds = (t1 - t0) / 1e9
    return {"mb_s": total / seconds / 1e6, "cpu_s": cpu, "audio_s": total / 48000, "ok": total == expected}


CLIENTS = {"lmnt_sync": LmntSyncClient, "sdk": SdkClient, "floor": FloorClient}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name, url, key, sizes = argv[0], argv[1], argv[2], json.loads(argv[3])
    client = CLIENTS[name](url, key, sizes)
    # The same client type pointed at bench/blaster.py (a server that is never the bottleneck).
    blaster = CLIENTS[name](argv[4], "blast", sizes) if len(argv) > 4 else None
    # Warm up every path once (imports, first connection, allocator) before anything is timed.
    client.open_first(2)
    client.open_first(2, preconnect=True)
    client.flush_first(2)
    client.handoff(5)
    client.throughput(4)
    if blaster is not None:
        blaster.throughput(4)
    print(json.dumps({"ready": name, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        gc.collect()
        target = blaster if command.pop("blaster", False) else client
        result = getattr(target, op)(**command)
        print(json.dumps({"op": op, "result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
