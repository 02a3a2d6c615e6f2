"""The originality guard (issue 9): 1,000 melodies generated with ``--max-copy`` at the corpus
default, checked by an independent a-posteriori index; generation speed with and without the
guard; pitch bits/note of what is generated (scored by the model) with and without; the time to
rebuild the shipped index; and how the default was derived.

The independent index is built from the training split's songs as ``tunesmith evaluate`` builds
it, not from the checkpoint entry the guard uses. Uses the generation API with controls
(``Generator.generate(..., controls=[...])``). Run:
``TUNESMITH_CACHE=... .venv/bin/python benchmarks/bench_originality.py [--model PATH] [--num 1000]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tunesmith.checkpoint import Checkpoint
from tunesmith.config import Config
from tunesmith.corpus import prepare
from tunesmith.corpus.dataset import Example
from tunesmith.generate import Generator, default_model_path
from tunesmith.generate.copyguard import CopyGuard
from tunesmith.likelihood import evaluate_model
from tunesmith.originality import OriginalityIndex, entry_for_checkpoint, entry_of, index_from_entry


def pitch_bits(generator: Generator, melodies) -> float:
    """Pitch bits/note of generated melodies under the model that wrote them (teacher forcing)."""
    examples = [Example(m.song, m.tokens, "", "generated") for m in melodies]
    scores = evaluate_model(generator.model, examples, generator.vocab, generator.modes, generator.meters,
                            generator.steps_per_quarter, generator.device)  # fmt: skip
    return scores["pitch_bits_per_note"]


class Timed(CopyGuard):
    """The guard, with the seconds spent in its hooks added up."""

    seconds = 0.0

    def allowed(self, ctx):
        t = time.perf_counter()
        try:
            return super().allowed(ctx)
        finally:
            self.seconds += time.perf_counter() - t

    def advance(self, chosen):
        t = time.perf_counter()
        super().advance(chosen)
        self.seconds += time.perf_counter() - t


def one_melody(generator: Generator, entry: dict, limit: int, bars: int, repeats: int = 5) -> dict:
    """Seconds for one melody as ``tunesmith generate`` makes it: without the guard, and with it
    including loading the index from the checkpoint entry (cached automaton). Best of ``repeats``."""
    without, guarded = [], []
    for seed in range(repeats):
        t = time.perf_counter()
        generator.generate(num=1, bars=bars, seed=seed)
        without.append(time.perf_counter() - t)
        t = time.perf_counter()
        generator.generate(num=1, bars=bars, seed=seed, controls=[CopyGuard(index_from_entry(entry), limit, generator.vocab)])
        guarded.append(time.perf_counter() - t)
    return {"without guard": round(min(without), 3), "with guard and index load": round(min(guarded), 3)}


def summary(lengths: list[int], limit: int) -> dict:
    """How many of ``lengths`` (longest shared stretch per melody, notes) exceed ``limit``, and their spread."""
    array = np.array(lengths)
    return {"over_limit": int((array > limit).sum()), "median": float(np.median(array)),
            "p95": int(np.percentile(array, 95, method="inverted_cdf")), "max": int(array.max()),
            "mean": round(float(array.mean()), 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--max-copy", type=int, nargs="*", default=[],
                        help="limits to try (notes); default: the checkpoint's corpus default")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each setting (best counts)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--scheme", default="sample", help="any generation scheme; beam search exercises reorder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a busy machine)")
    parser.add_argument("--out", default="benchmarks/results/originality.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    checkpoint = Checkpoint.load(args.model)
    entry = entry_of(checkpoint)
    shipped = entry is not None
    if entry is None:
        entry = entry_for_checkpoint(checkpoint, progress=False)
    entry_seconds = time.perf_counter() - started
    t = time.perf_counter()
    index_from_entry(entry, cache=False)
    build_seconds = time.perf_counter() - t
    loads = []
    for _ in range(3):
        t = time.perf_counter()
        index = index_from_entry(entry)  # the first may build and store the cached automaton
        loads.append(time.perf_counter() - t)
    limits = args.max_copy or [int(entry["held_out"]["max_copy"])]

    run_config = Config.from_dict(checkpoint.config)
    train = prepare(run_config.corpus, run_config.encoding, progress=False).split("train")
    independent = OriginalityIndex(e.song for e in train)

    generator = Generator.from_checkpoint(args.model, args.device)
    settings = dict(num=args.num, bars=args.bars, seed=1234, temperature=args.temperature, scheme=args.scheme)
    runs = [("without guard", None)] + [(f"with guard, max copy {limit}", limit) for limit in limits]
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    made: dict[str, tuple] = {}
    for _ in range(args.repeats):  # settings take turns, so a change in machine load hits them alike
        for name, limit in runs:
            controls = [Timed(index, limit, generator.vocab)] if limit else []
            t = time.perf_counter()
            melodies = generator.generate(controls=controls, **settings)
            times[name].append(time.perf_counter() - t)
            made[name] = (melodies, controls[0] if controls else None)
    results: dict = {}
    for name, _ in runs:
        melodies, guard = made[name]
        best = min(times[name])
        steps = sum(len(m.tokens) for m in melodies)
        lengths = [independent.longest_match(m.song).notes for m in melodies]
        results[name] = {"seconds": round(best, 2), "all_seconds": [round(t, 2) for t in times[name]],
                         "steps_per_s": round(steps / best),
                         "copies": {f"max copy {n}": summary(lengths, n) for n in limits},
                         "pitch_bits_per_note": round(pitch_bits(generator, melodies), 4),
                         "fallbacks": guard.fallbacks if guard else 0,
                         "guard_seconds_last_run": round(guard.seconds, 2) if guard else 0.0}  # fmt: skip
    report = {
        "model": args.model, "device": args.device, "torch_threads": torch.get_num_threads(),
        "melodies": args.num, "bars": args.bars, "temperature": args.temperature,
        "scheme": args.scheme, "max_copy": limits,
        "default": entry["held_out"], "index_shipped": shipped,
        "index_songs": len(entry["titles"]), "index_notes": int(len(entry["steps"])),
        "entry_seconds": round(entry_seconds, 2), "build_seconds": round(build_seconds, 3),
        "cached_load_seconds": round(min(loads), 3), "one_melody_seconds": one_melody(generator, entry, limits[0], args.bars),
        "speed_ratio": {name: round(results["without guard"]["seconds"] / results[name]["seconds"], 3)
                        for name, limit in runs if limit},  # fmt: skip
        **results,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
