"""Benchmarks of the client (vs the official async SDK) and of the local server.

Run from the repository root; prints Markdown (figures in BENCHMARKS.md):

    python bench/run.py            # full run, about 5 minutes on 2 cores
    python bench/run.py --quick    # under a minute, fewer rounds and samples (noisier)
    python bench/run.py --only clients --json out.json
    python bench/run.py --compare TREE   # + lmnt_sync from another checkout, same run

Benchmarks, not timed tests: nothing here passes or fails on a number. The
machines are noisy, so the client figures are ratios against baselines
measured in the same run, interleaved round by round.

Clients (``client_worker.py``), each in its own long-lived process, all on
one local server in another process (``server_proc.py``) with the stamping
bench engine (``stamp_engine.py``: audio at once, send time in each frame):

* ``lmnt_sync``: this project; ``sdk``: lmnt 2.x ``AsyncLmnt`` sessions;
  ``floor``: websocket-client used directly in the caller's thread.
* Throughput through the local server is bounded by the server (one
  worker-thread hop per chunk); ``blaster.py``, a bare server that writes
  pre-built frames, measures each client's own receive capacity as well.
* Round r runs every measurement for the three clients in a rotated order
  (A/B/C, B/C/A, C/A/B, ...), so drift hits all of them alike. Each figure
  is the median over rounds of the per-round value; each ratio is the
  median over rounds of (client / baseline) within the round.

Server (``server_bench.py``): the default engine's server in its own
process, real voices (``lily`` -> the default engine's voice; ``joe`` ->
Piper): flush -> first audio byte per engine and format, RTF, and a ramp of
concurrent real-time sessions checked for underruns.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import server_bench as sb  # noqa: E402
from stats import median, percentile, proc_rss, ratio, spread  # noqa: E402

__all__ = ["main"]

CLIENTS = ["lmnt_sync", "sdk", "floor"]
SIZES = {"instant_bytes": 4800, "paced_bytes": 4800, "pace_s": 0.01, "burst_bytes": 65536}

FULL = {"rounds": 10, "open_n": 10, "flush_n": 10, "frames": 400, "tp_words": 1000, "blast_words": 3000,
        "mem_sessions": 100, "fa_n": 30, "rtf_n": 3, "ramp": [10, 25, 50, 75, 100, 125, 150, 200, 300], "ramp_s": 10.0}
QUICK = {"rounds": 3, "open_n": 6, "flush_n": 6, "frames": 150, "tp_words": 400, "blast_words": 1500,
         "mem_sessions": 40, "fa_n": 10, "rtf_n": 1, "ramp": [25, 50], "ramp_s": 5.0}


class Proc:
    """A child process spoken to in JSON lines."""

    def __init__(self, args: List[str], env: Optional[Dict[str, str]] = None) -> None:
        self.p = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, cwd=ROOT, env={**os.environ, **env} if env else None)
        self.hello = self.read()

    def read(self) -> Dict[str, Any]:
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"child {self.p.args} ended (exit {self.p.wait()})")
        return json.loads(line)

    def call(self, **command: Any) -> Any:
        self.p.stdin.write(json.dumps(command) + "\n")
        self.p.stdin.flush()
        return self.read()["result"]

    def close(self) -> None:
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def start_server(engine: str) -> Proc:
    args = ["bench/server_proc.py", "--engine", engine]
    if engine == "stamp":
        args += [f"--{k.replace('_', '-')}={v}" for k, v in SIZES.items()]
    return Proc(args)


# -- clients -----------------------------------------------------------------

def run_clients(cfg: Dict[str, Any], log, compare: Optional[str] = None) -> Dict[str, Any]:
    """Measure the clients, interleaved; ``compare``: also lmnt_sync from that checkout."""
    clients = CLIENTS + (["compare"] if compare else [])
    server = start_server("stamp")
    info = server.hello
    if not info["passthrough"]:
        raise RuntimeError("the server's pcm_s16le encoder does not pass bytes through: stamps would break")
    blaster = Proc(["bench/blaster.py", f"--frame-bytes={SIZES['burst_bytes']}"])
    workers: Dict[str, Proc] = {}
    try:
        for name in clients:
            workers[name] = Proc(["bench/client_worker.py", "lmnt_sync" if name == "compare" else name, info["url"],
                                  info["api_key"], json.dumps(SIZES), blaster.hello["url"]],
                                 env={"BENCH_LMNT_SYNC_TREE": compare} if name == "compare" else None)
        memory = {}
        for name in clients:
            memory[name] = workers[name].call(op="memory", n=cfg["mem_sessions"])
            log(f"memory {name}: {memory[name]}")
        server_idle = _server_idle_rss(info, cfg["mem_sessions"])
        metrics: Dict[str, Dict[str, List[float]]] = {}

        def add(metric: str, name: str, value: float) -> None:
            metrics.setdefault(metric, {c: [] for c in clients})[name].append(value)

        failed: List[str] = []  # "client op" whose bytes did not arrive unchanged

        def check(name: str, op: str, result: Dict[str, Any]) -> None:
            if not result["ok"] and f"{name} {op}" not in failed:
                failed.append(f"{name} {op}")
                log(f"CHECK FAILED: {name} {op}")

        for r in range(cfg["rounds"]):
            order = clients[r % len(clients):] + clients[:r % len(clients)]
            for name in order:
                add("open_ms", name, median(workers[name].call(op="open_first", n=cfg["open_n"])))
            for name in order:
                add("open_warm_ms", name, median(workers[name].call(op="open_first", n=cfg["open_n"], preconnect=True)))
            for name in order:
                add("flush_ms", name, median(workers[name].call(op="flush_first", n=cfg["flush_n"])))
            for name in order:
                h = workers[name].call(op="handoff", frames=cfg["frames"])
                add("handoff_p50_us", name, percentile(h["lat_us"], 0.5))
                add("handoff_p99_us", name, percentile(h["lat_us"], 0.99))
                add("cpu_s_per_audio_h", name, h["cpu_s"] / h["audio_s"] * 3600)
                check(name, "handoff", h)
            for name in order:
                t = workers[name].call(op="throughput", n_words=cfg["tp_words"])
                add("throughput_mb_s", name, t["mb_s"])
                add("cpu_s_per_audio_h_bulk", name, t["cpu_s"] / t["audio_s"] * 3600)
                check(name, "throughput", t)
            for name in order:
                t = workers[name].call(op="throughput", n_words=cfg["blast_words"], blaster=True)
                add("capacity_mb_s", name, t["mb_s"])
                add("cpu_s_per_audio_h_capacity", name, t["cpu_s"] / t["audio_s"] * 3600)
                check(name, "capacity", t)
            log(f"round {r + 1}/{cfg['rounds']}: " + ", ".join(
                f"{m} " + "/".join(f"{metrics[m][c][-1]:.3g}" for c in clients) for m in metrics))
        for name in clients:
            add("rss_kib_per_session", name, memory[name]["rss_per_session"] / 1024)
            add("threads_per_session", name, memory[name]["threads_per_session"])
        return {"metrics": metrics, "checks_ok": not failed, "failed_checks": failed,
                "server_idle_kib_per_session": server_idle / 1024}
    finally:
        for w in workers.values():
            w.close()
        blaster.close()
        server.close()


def _server_idle_rss(info: Dict[str, Any], n: int) -> float:
    """Server RSS growth per idle open session (init sent, ready received), bytes."""
    import websocket

    from lmnt_sync.transport import websocket_url

    socks = []
    base = proc_rss(info["pid"])
    for _ in range(n):
        ws = websocket.create_connection(websocket_url(info["url"]))
        ws.send(json.dumps({"X-API-Key": info["api_key"], "lmnt-version": "1.2", "voice": "instant",
                            "format": "pcm_s16le", "sample_rate": 24000}))
        ws.recv()
        socks.append(ws)
    time.sleep(0.2)
    after = proc_rss(info["pid"])
    for ws in socks:
        ws.close()
    return (after - base) / n


# -- server ------------------------------------------------------------------

def run_server(cfg: Dict[str, Any], log) -> Dict[str, Any]:
    server = start_server("hibari")
    info = server.hello
    out: Dict[str, Any] = {"first_audio": {}, "rtf": {}, "ramp": []}
    try:
        for engine, voice in (("hibari", "lily"), ("piper", "joe")):
            for fmt in sb.FORMATS:
                ms = sb.first_audio(info["url"], info["api_key"], voice, fmt, cfg["fa_n"])
                out["first_audio"][f"{engine}/{fmt}"] = {
                    "p50": percentile(ms, 0.5), "p95": percentile(ms, 0.95), "n": len(ms)}
                log(f"first audio {engine} {fmt}: p50 {percentile(ms, 0.5):.1f} ms p95 {percentile(ms, 0.95):.1f} ms")
            rtfs = sb.real_time_factor(info["url"], info["api_key"], voice, cfg["rtf_n"])
            out["rtf"][engine] = median(rtfs)
            log(f"RTF {engine}: {median(rtfs):.4f}")
        for n in cfg["ramp"]:
            level = sb.ramp_level(info["url"], info["api_key"], info["pid"], "lily", n, cfg["ramp_s"])
            out["ramp"].append(level)
            log(f"ramp {n}: {level}")
            if level["underruns"] or level["failed"]:
                break
    finally:
        server.close()
    return out


# -- report ------------------------------------------------------------------

ROWS = [  # metric, label, lower is better, target vs SDK (None: no target)
    ("open_ms", "new session -> first audio frame, ms", True, ("<=", 0.5)),
    ("open_warm_ms", "the same, lmnt_sync with Speech(preconnect=True) (the others open cold), ms", True, ("<=", 0.5)),
    ("flush_ms", "append_text + flush -> first audio frame, ms", True, ("<=", 1.0)),
    ("handoff_p50_us", "hand-off, server send -> caller, p50, us", True, None),
    ("handoff_p99_us", "hand-off, server send -> caller, p99, us", True, ("<=", 0.6)),
    ("throughput_mb_s", "throughput, one long stream, MB/s", False, (">=", 1.1)),
    ("capacity_mb_s", "receive capacity, one long stream from bench/blaster.py, MB/s", False, (">=", 1.1)),
    ("cpu_s_per_audio_h", "CPU s per hour of audio (100 ms frames, paced)", True, None),
    ("cpu_s_per_audio_h_bulk", "CPU s per hour of audio (1.4 s frames, local server)", True, None),
    ("cpu_s_per_audio_h_capacity", "CPU s per hour of audio (1.4 s frames, blaster)", True, None),
    ("rss_kib_per_session", "memory per open session, KiB RSS", True, None),
    ("threads_per_session", "threads per open session", True, None),
]


def _fmt(x: float) -> str:
    if x != x:
        return "n/a"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _ratio_txt(x: float) -> str:
    return f"{x:.2f}x" if x == x else "n/a"


def report_clients(res: Dict[str, Any], cfg: Dict[str, Any]) -> str:
    m = res["metrics"]
    has_other = "compare" in m["open_ms"]
    extra = " lmnt_sync, --compare tree | that / SDK |" if has_other else ""
    lines = [
        "| figure | lmnt_sync | official SDK | floor | lmnt_sync / SDK | lmnt_sync / floor | target | |" + extra,
        "|---|---|---|---|---|---|---|---|" + ("---|---|" if has_other else ""),
    ]
    for key, label, _, target in ROWS:
        vals = {c: median(v) for c, v in m[key].items()}
        per_round = len(m[key]["sdk"]) > 1
        r_sdk = ratio(m[key], "lmnt_sync", "sdk")
        r_floor = ratio(m[key], "lmnt_sync", "floor")
        rng = spread(m[key], "lmnt_sync", "sdk") if per_round else None
        r_txt = f"**{r_sdk:.2f}x**" + (f" ({rng[0]:.2f}-{rng[1]:.2f})" if rng else "") if r_sdk == r_sdk else "n/a"
        met = ""
        if target:
            op, bound = target
            ok = r_sdk <= bound if op == "<=" else r_sdk >= bound
            met = "met" if ok else "**missed**"
        tgt = f"{target[0]} {target[1]}x" if target else ""
        f_txt = _ratio_txt(r_floor)
        other = f" {_fmt(vals['compare'])} | {_ratio_txt(ratio(m[key], 'compare', 'sdk'))} |" if has_other else ""
        lines.append(f"| {label} | {_fmt(vals['lmnt_sync'])} | {_fmt(vals['sdk'])} | {_fmt(vals['floor'])} | "
                     f"{r_txt} | {f_txt} | {tgt} | {met} |" + other)
    lines.append("")
    lines.append(f"{cfg['rounds']} rounds; per round: {cfg['open_n']} new sessions, {cfg['flush_n']} flushes, "
                 f"{cfg['frames']} paced frames ({SIZES['paced_bytes']} B = 100 ms, {SIZES['pace_s'] * 1000:.0f} ms "
                 f"apart), one stream of {cfg['tp_words']} x {SIZES['burst_bytes'] // 1024} KiB frames "
                 "from the local server "
                 f"and one of {cfg['blast_words']} from the blaster; memory with "
                 f"{cfg['mem_sessions']} sessions open. Ratio ranges: lowest-highest per-round ratio. "
                 f"Server RSS per idle session: {res['server_idle_kib_per_session']:.0f} KiB. "
                 "Bytes checked unchanged end to end: "
                 + ("yes." if res["checks_ok"] else "NO: " + ", ".join(res["failed_checks"]) + "."))
    return "\n".join(lines)


def report_server(res: Dict[str, Any]) -> str:
    lines = ["| engine / format | flush -> first audio byte p50 ms | p95 ms |", "|---|---|---|"]
    for key, v in res["first_audio"].items():
        lines.append(f"| {key} | {v['p50']:.1f} | {v['p95']:.1f} |")
    lines.append("")
    lines.append("| engine | RTF (paragraph, one flush, through the server) |")
    lines.append("|---|---|")
    for engine, v in res["rtf"].items():
        lines.append(f"| {engine} | {v:.4f} |")
    lines.append("")
    lines.append("| sessions at once | failed | underruns | worst gap ms | least headroom s | "
                 "first audio p50 / p95 ms | server CPU cores | load generator CPU cores | server RSS KiB / session |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for lv in res["ramp"]:
        lines.append(f"| {lv['sessions']} | {lv['failed']} | {lv['underruns']} | {lv['worst_gap_ms']:.0f} | "
                     f"{lv['min_headroom_s']:.2f} | {lv['first_audio_p50_ms']:.0f} / {lv['first_audio_p95_ms']:.0f} | "
                     f"{lv['server_cpu_cores']:.2f} | {lv['load_cpu_cores']:.2f} | "
                     f"{lv['server_rss_per_session'] / 1024:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="lmnt_sync benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and samples (~1.5 min)")
    parser.add_argument("--only", choices=["clients", "server"], help="run one half only")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--compare", metavar="TREE", help="also measure lmnt_sync from this checkout (a folder "
                        "holding lmnt_sync/, e.g. made by: git archive REV lmnt_sync | tar -x -C TREE)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    results: Dict[str, Any] = {"config": cfg, "sizes": SIZES}
    out = [f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
           f"{'quick' if args.quick else 'full'} run"]
    if args.only in (None, "clients"):
        results["clients"] = run_clients(cfg, log, os.path.abspath(args.compare) if args.compare else None)
        out += ["", report_clients(results["clients"], cfg)]
    if args.only in (None, "server"):
        results["server"] = run_server(cfg, log)
        out += ["", report_server(results["server"])]
    out.append(f"\n({time.time() - t0:.0f} s)")
    print("\n".join(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
