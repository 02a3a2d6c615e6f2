"""Figures for `tunesmith prepare` (issue 2): cold and warm time, peak memory, the kern erk folder.

Run: .venv/bin/python benchmarks/bench_prepare.py   (targets: cold ≤ 75 s, warm ≤ 2 s, peak ≤ 1 GB)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from procmem import measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TUNESMITH = str(Path(sys.executable).with_name("tunesmith"))
KERN_ERK = ROOT.parent / "shared" / "data" / "essen-deutschl-kern" / "erk"


def run(corpus: str, cache: str) -> dict:
    result = measure([TUNESMITH, "prepare", "--corpus", corpus, "--json", "--no-progress"], {"TUNESMITH_CACHE": cache})
    if result["rc"] != 0:
        raise SystemExit(f"prepare failed: {result['stderr'].strip()}")
    result["report"] = json.loads(result["stdout"])
    return result


def main() -> None:
    print(f"machine: {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as cache:
        cold = run("essen/erk", cache)
        warm = run("essen/erk", cache)
        r = cold["report"]
        print(f"essen/erk cold: {cold['seconds']:.1f} s (target ≤ 75), peak {cold['peak_mb']:.0f} MB (target ≤ 1024); "
              f"{r['songs_kept']}/{r['songs_read']} kept, {r['tokens']:,} tokens")
        print(f"essen/erk warm: {warm['seconds']:.2f} s (target ≤ 2), cache {warm['report']['cache']}")
    if KERN_ERK.is_dir():
        with tempfile.TemporaryDirectory() as cache:
            kern = run(str(KERN_ERK), cache)
        r = kern["report"]
        print(f"kern erk folder: {r['songs_read']} files, {r['songs_kept']} kept, {r['songs_rejected']} rejected "
              f"{r['rejected_by_reason']}; {kern['seconds']:.1f} s, peak {kern['peak_mb']:.0f} MB")
    else:
        print(f"kern erk folder: skipped ({KERN_ERK} absent)")


if __name__ == "__main__":
    main()
