"""How many candidates the studio's regenerate can afford: the time of one studio regenerate
request's work (``tunesmith.studio.engine.regenerate``: 4 alternatives of bars 5-8 of a 16-bar
6/8 melody, shipped model, in process) for several candidates-per-alternative settings.

Run: TUNESMITH_CACHE=... .venv/bin/python benchmarks/bench_studio_candidates.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tunesmith.generate import GenerationConfig, Generator, default_model_path
from tunesmith.studio import engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = Generator.from_checkpoint(default_model_path(), device="cpu")
    melody = generator.generate(GenerationConfig(bars=16, meter="6/8", key="G", seed=1))[0]
    engine.regenerate(generator, "shipped", melody, (5, 8), 4, 0, {})  # warm up
    chosen = engine.CANDIDATES_PER_ALTERNATIVE
    print("candidates per alternative | candidates for 4 alternatives | median s | best s")
    for per in (8, 4, 2, 1, chosen):
        engine.CANDIDATES_PER_ALTERNATIVE = per
        times = []
        for round_ in range(args.rounds):
            start = time.perf_counter()
            engine.regenerate(generator, "shipped", melody, (5, 8), 4, 100 + round_, {"temperature": 1.0})
            times.append(time.perf_counter() - start)
        print(f"{per} | {4 * per} | {statistics.median(times):.3f} | {min(times):.3f}")
    engine.CANDIDATES_PER_ALTERNATIVE = chosen
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
