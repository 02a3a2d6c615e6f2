"""Run a command and measure its wall time and peak memory (RSS summed over its process tree)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def _tree_rss_mb(root: int) -> float:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def measure(command: list[str], env: dict[str, str] | None = None, interval: float = 0.05) -> dict:
    """Wall seconds, peak tree RSS in MB and exit code of ``command``."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(interval)
    out, err = proc.communicate()
    return {"seconds": time.perf_counter() - start, "peak_mb": peak, "rc": proc.returncode,
            "stdout": out.decode(), "stderr": err.decode()}  # fmt: skip
