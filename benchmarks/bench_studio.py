"""Studio load test: a real ``tunesmith serve`` on 127.0.0.1, 20 concurrent clients × 50 requests.

Requests alternate between composing a 16-bar melody and regenerating 4 bars (4 alternatives) of
a melody composed first. Reports p50/p95 latency per kind, throughput, the server's CPU time per
request (its processes' user + system time over the run, from /proc), the load generator's own
CPU time per request (it shares the cores) and errors. Loopback only,
bounded in count (1,000 requests) and time (--limit seconds, then the rest are not sent).

Run: .venv/bin/python benchmarks/bench_studio.py [--clients 20] [--requests 50] [--limit 300] [--only compose]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SERVER_LOG = Path(tempfile.gettempdir()) / "tunesmith-bench-studio.log"  # the server's stderr, shown on errors


def start_server(port: int, workers: int, processes: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "tunesmith", "serve", "--model", str(ROOT / "models" / "erk.pt"), "--host",
               "127.0.0.1", "--port", str(port), "--workers", str(workers), "--processes", str(processes)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=SERVER_LOG.open("w"), text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=30).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the server did not start: {SERVER_LOG.read_text()[-2000:]}")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants so far, from /proc (Linux;
    0.0 elsewhere): the server's cost per request, steadier than latencies on a shared machine."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in os.listdir(f"/proc/{current}/task"):
                todo += [int(child) for child in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds; requests not sent by then are skipped")
    parser.add_argument("--workers", type=int, default=2, help="the server's generation slots per process")
    parser.add_argument("--processes", type=int, default=2, help="the server's processes (default 2, as `serve`)")
    parser.add_argument("--only", choices=("compose", "regenerate"), default=None,
                        help="send one kind of request only (default: alternate them)")  # fmt: skip
    args = parser.parse_args()
    port = free_port()
    server = start_server(port, args.workers, args.processes)
    base = f"http://127.0.0.1:{port}"
    try:
        melody = httpx.post(f"{base}/api/compose", json={"bars": 16, "seed": 1}, timeout=60).json()["melodies"][0]
        latencies: dict[str, list[float]] = {"compose 16 bars": [], "regenerate 4 bars": []}
        errors: list[str] = []
        skipped = [0]
        lock = threading.Lock()
        deadline = time.monotonic() + args.limit

        def client(index: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                for n in range(args.requests):
                    if time.monotonic() > deadline:
                        with lock:
                            skipped[0] += args.requests - n
                        return
                    if args.only == "compose" or (args.only is None and (index + n) % 2 == 0):
                        kind, path = "compose 16 bars", "/api/compose"
                        body = {"bars": 16, "seed": index * 1000 + n, "key": "G", "meter": "6/8"}
                    else:
                        kind, path = "regenerate 4 bars", "/api/regenerate"
                        first = 1 + (index + n) % 13
                        body = {"melody": melody, "bars": [first, first + 3], "num": 4, "seed": index * 1000 + n}
                    start = time.perf_counter()
                    try:
                        response = http.post(path, json=body)
                        ok = response.status_code == 200
                        detail = f"{response.status_code} {response.text[:120]}"
                    except httpx.HTTPError as exc:
                        ok, detail = False, type(exc).__name__
                    elapsed = time.perf_counter() - start
                    with lock:
                        (latencies[kind] if ok else errors).append(elapsed if ok else f"{kind}: {detail}")

        cpu_before, client_before = tree_cpu(server.pid), time.process_time()
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        server_cpu, client_cpu = tree_cpu(server.pid) - cpu_before, time.process_time() - client_before
    finally:
        server.terminate()
        server.wait(timeout=30)
    done = sum(len(v) for v in latencies.values())
    print(f"studio load test: {args.clients} clients x {args.requests} requests, server {args.processes} processes "
          f"x {args.workers} slots, "
          f"{os.cpu_count()} CPUs, loopback")  # fmt: skip
    print(f"{done} ok, {len(errors)} errors, {skipped[0]} not sent (time limit), {wall:.1f} s, {done / wall:.1f} requests/s"
          + (f", server CPU {1000 * server_cpu / done:.1f} ms per request" if done and server_cpu else "")
          + (f" (this load generator, on the same cores: {1000 * client_cpu / done:.1f} ms)" if done else ""))  # fmt: skip
    for kind, values in latencies.items():
        if values:
            print(f"  {kind:18s} n={len(values):4d}  p50 {statistics.median(values):.3f} s  "
                  f"p95 {percentile(values, 95):.3f} s  max {max(values):.3f} s")  # fmt: skip
    for error in errors[:5]:
        print("  error:", error)
    if errors:
        print(f"server log ({SERVER_LOG}), last lines:\n{SERVER_LOG.read_text()[-3000:]}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
