"""First-try form misses (issues 10 and 12): how often a default compose's phrases miss its own
drawn form before any retry, and why.

A miss costs a second decode (the CLI's ``FORM_RETRIES``; the studio decodes the first retry
beside every compose, so it costs the spare rows instead). Composes ``--num`` melodies (default:
the studio load test's request, 16 bars of 6/8 in G) with seeds 1000…, the retries turned off,
and prints the misses and the compliance problems behind them.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_form_misses.py [--num 150] [--meter 6/8] [--bars 16]
[--form AABA]
"""

from __future__ import annotations

import argparse
import collections
import re

import tunesmith.generate.generator as generator_module
from tunesmith.form import compliance
from tunesmith.generate import GenerationConfig, Generator, default_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--num", type=int, default=150)
    parser.add_argument("--meter", default="6/8")
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--key", default="G")
    parser.add_argument("--form", default=None, help="ask for this form (default: each melody draws its own)")
    args = parser.parse_args()
    generator_module.FORM_RETRIES = 0  # first tries only
    generator = Generator.from_checkpoint(args.model, "cpu")
    problems: collections.Counter = collections.Counter()
    misses = 0
    for n in range(args.num):
        config = GenerationConfig(bars=args.bars, meter=args.meter, key=args.key, seed=1000 + n, form=args.form)
        melody = generator.generate(config)[0]
        check = compliance(melody.song, melody.params["form"])
        if not check.ok:
            misses += 1
            # "phrases 2 (B) and 8 (B') should be a variant, are different" -> the kind of problem
            problems.update({re.sub(r"^phrases \d+ \(\S+\) and \d+ \(\S+\) ", "", p) for p in check.problems})
    asked = f"form {args.form}" if args.form else "drawn forms"
    print(f"{misses} of {args.num} first tries miss their form ({100 * misses / args.num:.1f}%): "
          f"{args.bars} bars of {args.meter} in {args.key}, {asked}, default settings")  # fmt: skip
    for problem, count in problems.most_common():
        print(f"  {count:3d}  {problem}")


if __name__ == "__main__":
    main()
