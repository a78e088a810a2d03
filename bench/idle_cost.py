"""What an open session that does nothing costs: CPU and wake-ups per minute.

    python bench/idle_cost.py [--window 20] [--rounds 3] [--compare TREE]

A GUI app or notebook keeps a session open and a reader waiting for most of
its life. Each client runs in a process of its own against the local server
(its own process too); once the client says it is idle, the parent reads
the client process's CPU time (``/proc/PID/task/*/schedstat``, every
thread) and voluntary context switches (``/proc/PID/task/*/status``) before
and after ``--window`` seconds, scaled to one minute. Rounds interleave the
clients; the table shows medians. Keepalive pings (client and server, every
20 s) are part of every figure alike.

Clients: ``open`` (lmnt_sync session, nobody reading), ``iterating`` (a
thread blocked iterating it), ``preconnect`` (``Speech(preconnect=True)``
plus an iterating session), ``sdk`` (the official lmnt 2.x SDK, an async
iteration waiting), ``floor`` (websocket-client alone, blocked in
``recv``); with ``--compare TREE``, ``iterating@TREE`` runs the iterating
client from another checkout (e.g. ``git archive REV lmnt_sync | tar -x -C TREE``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLIENTS = ("open", "iterating", "preconnect", "sdk", "floor")


def process_cost(pid: int) -> tuple:
    """(CPU seconds, voluntary context switches) of every thread of ``pid`` so far."""
    cpu_ns = switches = 0
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(f"{task}/schedstat") as f:
                cpu_ns += int(f.read().split()[0])
            with open(f"{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        switches += int(line.split()[1])
        except (OSError, ValueError, IndexError):  # a thread ended meanwhile
            pass
    return cpu_ns / 1e9, switches


def measure(kind: str, url: str, key: str, window: float, tree: str, script: str = __file__) -> dict:
    """Start one idle client, measure ``window`` seconds of it, stop it.

    ``script`` is run with ``--child KIND URL KEY`` (default: this file's
    :func:`child`); it prints "idle" once idle and idles until its standard
    input closes.
    """
    env = dict(os.environ, PYTHONPATH=tree or ROOT)
    child = subprocess.Popen([sys.executable, script, "--child", kind, url, key], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "idle", f"{kind} did not start"
        time.sleep(1.0)  # let start-up work (thread starts, first frames) finish outside the window
        cpu0, sw0 = process_cost(child.pid)
        time.sleep(window)
        cpu1, sw1 = process_cost(child.pid)
    finally:
        child.stdin.close()
        child.wait(30)
    scale = 60.0 / window
    return {"cpu_ms_per_min": (cpu1 - cpu0) * 1000 * scale, "wakeups_per_min": (sw1 - sw0) * scale}


def child(kind: str, url: str, key: str) -> None:
    """Open the client, say "idle", and idle until standard input closes."""
    import threading

    if kind == "floor":
        import websocket

        ws = websocket.create_connection(url.replace("http", "ws", 1) + "/v1/ai/speech/stream")
        ws.send(json.dumps({"X-API-Key": key, "lmnt-version": "1.2", "voice": "lily", "format": "pcm_s16le"}))
        threading.Thread(target=lambda: [ws.recv_data(control_frame=True) for _ in iter(int, 1)], daemon=True).start()
    elif kind == "sdk":
        import asyncio

        from lmnt import AsyncLmnt

        async def session() -> None:
            client = AsyncLmnt(api_key=key, base_url=url)
            speech = await client.speech.sessions.create(voice="lily", format="pcm_s16le")
            async for _ in speech:
                pass

        threading.Thread(target=lambda: asyncio.run(session()), daemon=True).start()
    else:
        from lmnt_sync import Speech

        speech = Speech(api_key=key, base_url=url, preconnect=(kind == "preconnect"))
        conn = speech.synthesize_streaming("lily", format="pcm_s16le")
        conn.wait_ready(10)
        if kind != "open":
            threading.Thread(target=lambda: list(conn), daemon=True).start()
    print("idle", flush=True)
    sys.stdin.read()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", metavar="TREE", help="also the iterating client from this checkout")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "server_proc.py"), "--engine", "synthetic"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(server.stdout.readline())
    runs = [(kind, "") for kind in CLIENTS]
    if args.compare:
        runs.append(("iterating", os.path.abspath(args.compare)))
    results: dict = {}
    try:
        for round_no in range(args.rounds):
            for kind, tree in runs:
                name = kind + (f"@{os.path.basename(tree)}" if tree else "")
                got = measure(kind, info["url"], info["api_key"], args.window, tree)
                results.setdefault(name, []).append(got)
                print(f"round {round_no + 1}: {name}: {got['cpu_ms_per_min']:.1f} CPU ms/min, "
                      f"{got['wakeups_per_min']:.0f} wake-ups/min", flush=True)
    finally:
        server.stdin.close()
        server.wait(30)
    print("\n| client | CPU ms / min | wake-ups / min |\n|---|---|---|")
    for name, rows in results.items():
        cpu = statistics.median(r["cpu_ms_per_min"] for r in rows)
        wakeups = statistics.median(r["wakeups_per_min"] for r in rows)
        print(f"| {name} | {cpu:.1f} | {wakeups:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
