"""Small statistics helpers for the benchmarks (no timing is asserted anywhere)."""
from __future__ import annotations

import statistics
from typing import Dict, List, Optional, Sequence

__all__ = ["percentile", "median", "ratio", "spread", "proc_rss", "proc_cpu"]


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-quantile (0..1) with linear interpolation."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    low = int(pos)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(per_round: Dict[str, List[float]], client: str, baseline: str) -> float:
    """Median over rounds of ``client / baseline``, each pair from the same round."""
    pairs = [a / b for a, b in zip(per_round[client], per_round[baseline]) if b]
    return median(pairs)  # nan when the baseline is 0 (e.g. threads of a threadless client)


def spread(per_round: Dict[str, List[float]], client: str, baseline: str) -> Optional[tuple]:
    """Lowest and highest per-round ratio (how much the rounds disagree)."""
    pairs = [a / b for a, b in zip(per_round[client], per_round[baseline]) if b]
    return (min(pairs), max(pairs)) if pairs else None


def proc_rss(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all threads)."""
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
