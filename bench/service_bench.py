"""Concurrent real-time sessions: one process, ``--workers 2``, two replicas behind nginx.

    python bench/service_bench.py [--levels 50,100,150,200] [--seconds 10]

Each configuration is started as a service would be (``python -m
lmnt_sync.server``, default engine), then ``server_bench.ramp_level`` runs
N sessions at once (word by word at 6 words/s, pcm_s16le; a session
underruns if a frame arrives after the audio before it has played out).
CPU is summed over every process of the configuration (gunicorn's master
and workers; both replicas and nginx). Prints one JSON line per level.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE, os.path.join(ROOT, "tests")]

from server_bench import ramp_level  # noqa: E402
from service_kit import Nginx, ServerProcess  # noqa: E402  (tests/service_kit.py)
from stats import proc_cpu  # noqa: E402

KEY = "bench-key"


def _tree(pid: int) -> List[int]:
    """Return ``pid`` and all its descendants."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            for child in map(int, children.read().split()):
                out += _tree(child)
    except OSError:
        pass
    return out


def _cpu(pids: List[int]) -> float:
    total = 0.0
    for root in pids:
        for pid in _tree(root):
            try:
                total += proc_cpu(pid)
            except OSError:
                pass
    return total


def _level(url: str, pids: List[int], sessions: int, seconds: float) -> Dict[str, object]:
    import time

    cpu0, t0 = _cpu(pids), time.perf_counter()
    result = ramp_level(url, KEY, pids[0], "lily", sessions, seconds)
    result["server_cpu_cores"] = (_cpu(pids) - cpu0) / (time.perf_counter() - t0)
    result.pop("server_rss_per_session", None)  # one process's RSS says little here
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="50,100,150,200")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--configs", default="one,workers2,nginx2")
    parser.add_argument("--tree", default=None,
                        help="run the servers from this source tree (a baseline), not this one")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.levels.split(",")]
    env = {"PYTHONPATH": args.tree} if args.tree else None
    common = ["--api-key", KEY, "--max-sessions", "1000"]
    with tempfile.TemporaryDirectory(prefix="lmnt-bench-") as tmp:
        for config in args.configs.split(","):
            folder = Path(tmp) / config
            folder.mkdir()
            servers: List[ServerProcess] = []
            proxy = None
            try:
                if config == "one":
                    servers.append(ServerProcess(common + ["--data-dir", str(folder)], env=env))
                elif config == "workers2":
                    servers.append(ServerProcess(common + ["--data-dir", str(folder), "--workers", "2"], env=env))
                    servers[0].wait_for_count("listening on", 2, 300)
                else:  # two replicas behind nginx (one SQLite store each: only system voices are used)
                    for i in range(2):
                        (folder / str(i)).mkdir()
                        servers.append(ServerProcess(common + ["--data-dir", str(folder / str(i))], env=env))
                    proxy = Nginx(folder, [s.port for s in servers])
                url = proxy.url if proxy else servers[0].url
                pids = [s.proc.pid for s in servers] + ([proxy.proc.pid] if proxy else [])
                ramp_level(url, KEY, pids[0], "lily", 2, 3.0)  # warm every worker's voice
                for sessions in levels:
                    print(json.dumps({"config": config, **_level(url, pids, sessions, args.seconds)}),
                          flush=True)
            finally:
                if proxy:
                    proxy.stop()
                for server in servers:
                    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
