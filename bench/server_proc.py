"""Run the local server in its own process for the benchmarks.

    python bench/server_proc.py --engine stamp [--max-sessions N] [--paced-bytes B] ...

Prints one JSON line ``{"url", "api_key", "pid", "passthrough"}`` once the
port listens, then serves until its standard input closes. :func:`spawn`
starts it (from this tree or another checkout, see :func:`export`) and
:func:`stop` ends it. A separate
process keeps the clients' threads from fighting the server for the GIL.

With ``--engine stamp`` (``stamp_engine.StampEngine``), aiohttp's
``WebSocketResponse.send_bytes`` is wrapped in this process only, so the
first 8 bytes of every stamped chunk carry ``perf_counter_ns()`` of the
moment the frame goes to the socket; hand-off latency is then measured from
the server's send, not from the engine. ``passthrough`` reports that the
server's pcm_s16le encoder at the engine's rate returns its input
unchanged, which the clients also check on the bytes they receive.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stamp_engine import HEADER, MAGIC, StampEngine  # noqa: E402

__all__ = ["install_send_stamp", "encoder_passes_through", "spawn", "stop", "export", "main"]


def spawn(tree: str = ROOT, *args: str) -> Dict[str, Any]:
    """Start this script from checkout ``tree`` with ``args``; return its JSON line plus ``proc``.

    Blocks until the server listens (engines loaded).
    """
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.Popen([sys.executable, os.path.join(tree, "bench", "server_proc.py"), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tree, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.wait(30)
        raise RuntimeError(f"the server from {tree} did not start (exit status {proc.returncode})")
    info = json.loads(line)
    info["proc"] = proc
    return info


def stop(info: Dict[str, Any]) -> None:
    """End a server :func:`spawn` started; blocks until it has exited."""
    proc = info["proc"]
    proc.stdin.close()
    proc.wait(timeout=30)


def export(rev: str, into: str) -> str:
    """Export ``rev`` of this repository (``git archive``) into ``into``; return the tree's path."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def install_send_stamp() -> None:
    """Stamp stamped chunks with the send time, in this process's aiohttp."""
    from aiohttp import web

    original = web.WebSocketResponse.send_bytes

    async def send_bytes(self, data, compress=None):  # type: ignore[no-untyped-def]
        if len(data) >= HEADER and data[16:20] == MAGIC:
            data = time.perf_counter_ns().to_bytes(8, "little") + data[8:]
        await original(self, data, compress)

    web.WebSocketResponse.send_bytes = send_bytes  # type: ignore[method-assign]


def encoder_passes_through(rate: int = 24000) -> bool:
    """Return True if the server's pcm_s16le encoder at ``rate`` returns its input as is."""
    from lmnt_sync.codecs import Encoder

    encoder = Encoder("pcm_s16le", rate, rate)
    data = bytes(range(256)) * 19
    return encoder.encode(data) == data and encoder.drain() == b"" and encoder.finish() == b""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="stamp", help="stamp, or a registry engine name")
    parser.add_argument("--max-sessions", type=int, default=400)
    parser.add_argument("--instant-bytes", type=int, default=4800)
    parser.add_argument("--paced-bytes", type=int, default=4800)
    parser.add_argument("--pace-s", type=float, default=0.01)
    parser.add_argument("--burst-bytes", type=int, default=65536)
    parser.add_argument("--workers", type=int, help="experiment: synthesis threads instead of the server's choice")
    args = parser.parse_args(argv)
    if args.workers:
        from lmnt_sync.server import local

        local.worker_count = lambda: args.workers  # read by LocalServer when it starts

    from lmnt_sync.server import LocalServer
    from lmnt_sync.server.engines import engine_names, get_engine

    if args.engine == "stamp":
        install_send_stamp()
        engine = StampEngine(args.instant_bytes, args.paced_bytes, args.pace_s, args.burst_bytes)
        engine.load()
    else:
        engine = get_engine(args.engine)
        for name in engine_names():  # load every served engine (registry singletons) before timing
            if name != "synthetic":
                try:
                    get_engine(name).load()
                except ImportError:
                    pass
    server = LocalServer(engine=engine, max_sessions=args.max_sessions)
    server.start()
    print(json.dumps({
        "url": server.url, "api_key": server.api_key, "pid": os.getpid(),
        "passthrough": encoder_passes_through(),
    }), flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
