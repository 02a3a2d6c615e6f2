"""The studio's work per request outside the decoding loop (issue 12): CPU ms per compose + regenerate.

What a server process spends in a request's own thread — planning (form, controls, copy guard),
choosing and finishing the answer (the best candidates, the copy measured, restruck notes) and
building its JSON — while the shared loop decodes. The load test's requests are replayed through
the studio's engine (``engine.compose_batch`` / ``engine.regenerate_batch``: a 16-bar 6/8 compose
in G and a 4-bar regeneration of a 16-bar melody, 4 alternatives), with their decoding answered
from a cache filled on a first pass, so only the request's own work is timed (process CPU time,
one thread). Prints the best and the median of ``--repeat`` passes of ``--pairs`` pairs.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_requests.py [--pairs 10] [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tunesmith.generate import Generator
from tunesmith.studio import engine

ROOT = Path(__file__).resolve().parents[1]


def replay(generator: Generator, pairs: int) -> Callable[[], None]:
    """A pass of ``pairs`` compose + regenerate requests as the studio runs them, decoding served from a cache."""
    base = engine.compose_batch(generator, "erk", [{"bars": 16, "seed": 1}])[0][0][0]
    decoded: dict[tuple, list] = {}

    def cached(plans, config, ahead=()):
        key = (tuple(plan.seed for plan in [*plans, *ahead]), len(plans))
        if key not in decoded:
            decoded[key] = generator.decode_plans([*plans, *ahead], config)
        return decoded[key]

    def run() -> None:
        for i in range(pairs):
            settings = {"bars": 16, "seed": 100 + i, "key": "G", "meter": "6/8"}
            for melodies, _ in engine.compose_batch(generator, "erk", [settings], decode=cached):
                [melody.to_dict() for melody in melodies]
            first = 1 + i % 13
            job = engine.Regeneration(base, (first, first + 3), 4, 200 + i, {}, set(), [])
            for alternatives in engine.regenerate_batch(generator, "erk", [job], decode=cached):
                [melody.to_dict() for melody in alternatives]

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "erk.pt"))
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile of one pass, by own time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = Generator.from_checkpoint(args.model, device="cpu")
    run = replay(generator, args.pairs)
    run()  # fills the decoding cache (and every lazy table)
    passes = []
    for _ in range(args.repeat):
        started = time.process_time()
        run()
        passes.append((time.process_time() - started) / args.pairs * 1000)
    print(f"CPU per compose + regenerate pair outside the loop: best {min(passes):.2f} ms, "
          f"median {statistics.median(passes):.2f} ms ({args.repeat} passes of {args.pairs})")  # fmt: skip
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(run)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
