"""The studio's decoding loop at a steady load, in one thread (issue 12): ms per step and row-steps/s.

``--composes K`` 16-bar 6/8 composes (each with its spare form retry, as the studio sends them)
and ``--regenerates K`` 4-bar regenerations (4 alternatives) of a 16-bar melody stay in one
:class:`~tunesmith.generate.stream.RowStream`: whenever a request's plans leave, the next one
joins (its controls built and prefix encoded here too, which the server does in the request's
thread). The plans are captured once from the studio's own engine (seeded), so every run
decodes the same work. No HTTP, no threads: what the load test's loop thread costs per step.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_stream.py [--composes 5] [--regenerates 5]
[--steps 1500] [--repeat 3] [--threads 1] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import time
from pathlib import Path

import torch

from tunesmith.generate import Generator
from tunesmith.generate.decode import StepChooser
from tunesmith.generate.rows import prepare
from tunesmith.generate.stream import RowStream
from tunesmith.studio import engine

ROOT = Path(__file__).resolve().parents[1]


def capture(generator: Generator, count: int) -> dict[str, list]:
    """The plans ``count`` studio composes and regenerations hand to the shared loop."""
    base = engine.compose_batch(generator, "erk", [{"bars": 16, "seed": 1}])[0][0][0]
    captured: dict[str, list] = {"compose": [], "regenerate": []}
    kind = ["compose"]

    def hook(plans, config, ahead=()):
        captured[kind[0]].append([*plans, *ahead])
        return generator.decode_plans(list(plans), config) + [None] * len(ahead)

    for i in range(count):
        kind[0] = "compose"
        engine.compose_batch(generator, "erk", [{"bars": 16, "seed": 100 + i, "key": "G", "meter": "6/8"}], decode=hook)
        kind[0] = "regenerate"
        first = 1 + i % 13
        job = engine.Regeneration(base, (first, first + 3), 4, 200 + i, {}, set(), [])
        engine.regenerate_batch(generator, "erk", [job], decode=hook)
    return {k: [plans for plans in v if plans] for k, v in captured.items()}


def run(generator: Generator, sets: dict[str, list], composes: int, regenerates: int, steps: int) -> dict:
    device = torch.device("cpu")
    stream = RowStream(generator.model, StepChooser("sample", 1.0, 8, 0.9, 0.5), device)
    cycles = {k: itertools.cycle(v) for k, v in sets.items()}
    done, pending = collections.Counter(), []

    def launch(kind: str) -> None:
        plans, left = next(cycles[kind]), [0]
        left[0] = len(plans)

        def answered(_result) -> None:
            left[0] -= 1
            if left[0] == 0:
                done[kind] += 1
                pending.append(kind)

        streams = [torch.Generator().manual_seed(p.seed) for p in plans]
        stream.join(prepare(generator.model, plans, streams, [answered] * len(plans), device))

    for _ in range(composes):
        launch("compose")
    for _ in range(regenerates):
        launch("regenerate")
    for _ in range(200):  # into the steady state
        stream.step()
        while pending:
            launch(pending.pop())
    done.clear()
    rows, started, cpu = 0, time.perf_counter(), time.thread_time()
    for _ in range(steps):
        rows += stream.rows
        stream.step()
        while pending:
            launch(pending.pop())
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
    return {"ms_per_step": 1e3 * wall / steps, "cpu_ms_per_step": 1e3 * cpu / steps, "rows": rows / steps,
            "row_steps_per_s": rows / wall, "requests_per_s": sum(done.values()) / wall}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "erk.pt"))
    parser.add_argument("--composes", type=int, default=5)
    parser.add_argument("--regenerates", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the server uses 1 per process)")
    parser.add_argument("--profile", action="store_true", help="torch's op table of one run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = Generator.from_checkpoint(args.model, device="cpu")
    sets = capture(generator, 8)
    results = []
    for _ in range(args.repeat):
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                results.append(run(generator, sets, args.composes, args.regenerates, args.steps))
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        else:
            results.append(run(generator, sets, args.composes, args.regenerates, args.steps))
        r = results[-1]
        print(f"{args.composes} composes + {args.regenerates} regenerations in flight: {r['ms_per_step']:.2f} ms/step "
              f"(cpu {r['cpu_ms_per_step']:.2f}), {r['rows']:.1f} rows, {r['row_steps_per_s']:,.0f} row-steps/s, "
              f"{r['requests_per_s']:.1f} requests/s")  # fmt: skip
    best = min(results, key=lambda r: r["ms_per_step"])
    print(f"best: {best['ms_per_step']:.2f} ms/step at {best['rows']:.1f} rows, {best['row_steps_per_s']:,.0f} row-steps/s")


if __name__ == "__main__":
    main()
